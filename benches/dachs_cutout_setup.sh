#!/usr/bin/env bash
# Set up the peer for benches/cutout_bench.sh: GAVO DaCHS (Debian gavodachs2-server, via
# benches/dachs_setup.sh) publishing the same synthetic 1 GiB FITS image (16384² int32, pixel value
# y*16384 + x, TAN at RA 150 Dec 2, 0.2"/px) in a products table with DaCHS's standard FITS SODA
# service (//soda#fits_genDesc + //soda#fits_standardDLFuncs) at /cutbench/q/dl/dlget.
# Idempotent; `benches/dachs_cutout_setup.sh stop` stops DaCHS and PostgreSQL again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
if [ "${1:-}" = stop ]; then exec bash "$here/dachs_setup.sh" stop; fi
bash "$here/dachs_setup.sh"

rd=/var/gavo/inputs/cutbench
mkdir -p "$rd/data"
if [ ! -s "$rd/data/synthetic_big.fits" ]; then
  PYTHONPATH="$here/../tests/vo" "$COLO_VENV/bin/python" -c "
from images_fixture import write_big
write_big('$rd/data/synthetic_big.fits')"
fi
cat > "$rd/q.rd" <<'RD'
<resource schema="cutbench">
  <meta name="title">colo cutout benchmark</meta>
  <meta name="description">A synthetic 1 GiB image for colo's SODA benchmark.</meta>
  <meta name="creationDate">2026-11-21T00:00:00</meta>
  <meta name="subject">images</meta>
  <meta name="creator.name">colo benchmark</meta>
  <table id="images" onDisk="True" adql="hidden">
    <mixin>//products#table</mixin>
  </table>
  <data id="import">
    <sources pattern="data/*.fits"/>
    <fitsProdGrammar>
      <rowfilter procDef="//products#define">
        <bind key="table">"cutbench.images"</bind>
      </rowfilter>
    </fitsProdGrammar>
    <make table="images"/>
  </data>
  <service id="dl" allowed="dlget,dlmeta">
    <meta name="title">colo cutout benchmark SODA</meta>
    <datalinkCore>
      <descriptorGenerator procDef="//soda#fits_genDesc">
        <bind key="accrefPrefix">"cutbench/"</bind>
      </descriptorGenerator>
      <FEED source="//soda#fits_standardDLFuncs"/>
    </datalinkCore>
  </service>
</resource>
RD
chown -R gavo:gavo "$rd" 2>/dev/null || true
(cd "$rd" && dachs imp q)
dachs serve reload 2>/dev/null || true
echo "DaCHS SODA: http://localhost:8080/cutbench/q/dl/dlget?ID=ivo://x-unregistred/~?cutbench/data/synthetic_big.fits"
