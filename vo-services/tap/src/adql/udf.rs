//! ADQL's geometry functions (ADQL 2.1 §4.2) as DataFusion scalar UDFs.
//!
//! A geometry value is a `List<Float64>` in DALI order without a type tag: 2 numbers are a POINT,
//! 3 a CIRCLE (lon, lat, radius), 4 a BOX (centre lon, lat, width, height; a pgSphere-style lon/lat
//! rectangle) and 6 or more a POLYGON (lon1, lat1, lon2, lat2, ...). The rewriter turns the common
//! forms (point in a constant circle, box or polygon; DISTANCE of two points) into the flat
//! functions `adql_distance`, `adql_in_box` and `adql_in_polygon`, which never build lists per row;
//! the list forms handle everything else. All angles are degrees.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, ListBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray};
use arrow_schema::{DataType, Field};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use colo_astro::sky;

/// Which function a [`GeometryUdf`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Distance,
    InBox,
    InPolygon,
    MakePoint,
    MakeCircle,
    MakeBox,
    MakePolygon,
    Contains,
    Intersects,
    DistanceGeo,
    Coord1,
    Coord2,
    Area,
    Centroid,
    HealpixIndex,
    ConeCells,
}

/// One ADQL geometry function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GeometryUdf {
    name: &'static str,
    signature: Signature,
    op: Op,
}

fn geometry_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

/// All geometry UDFs, to register in a session.
pub fn geometry_udfs() -> Vec<ScalarUDF> {
    let numeric = |n| Signature::uniform(n, vec![DataType::Float64], Volatility::Immutable);
    let variadic = Signature::variadic(vec![DataType::Float64], Volatility::Immutable);
    let any = |n| Signature::any(n, Volatility::Immutable);
    let defs = [
        ("adql_distance", numeric(4), Op::Distance),
        ("adql_in_box", numeric(6), Op::InBox),
        ("adql_in_polygon", variadic.clone(), Op::InPolygon),
        ("adql_point", numeric(2), Op::MakePoint),
        ("adql_circle", numeric(3), Op::MakeCircle),
        ("adql_box", numeric(4), Op::MakeBox),
        ("adql_polygon", variadic, Op::MakePolygon),
        ("adql_contains", any(2), Op::Contains),
        ("adql_intersects", any(2), Op::Intersects),
        ("adql_distance_geo", any(2), Op::DistanceGeo),
        ("adql_coord1", any(1), Op::Coord1),
        ("adql_coord2", any(1), Op::Coord2),
        ("adql_area", any(1), Op::Area),
        ("adql_centroid", any(1), Op::Centroid),
        ("adql_healpix_index", numeric(3), Op::HealpixIndex),
        ("adql_cone_cells", numeric(4), Op::ConeCells),
    ];
    defs.into_iter()
        .map(|(name, signature, op)| {
            ScalarUDF::from(GeometryUdf {
                name,
                signature,
                op,
            })
        })
        .collect()
}

impl ScalarUDFImpl for GeometryUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Op::Distance | Op::DistanceGeo | Op::Coord1 | Op::Coord2 | Op::Area => {
                DataType::Float64
            }
            Op::InBox | Op::InPolygon => DataType::Boolean,
            Op::Contains | Op::Intersects => DataType::Int32,
            Op::HealpixIndex => DataType::Int64,
            Op::ConeCells => DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            Op::MakePoint | Op::MakeCircle | Op::MakeBox | Op::MakePolygon | Op::Centroid => {
                geometry_type()
            }
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
        let n = if all_scalar { 1 } else { rows };
        let arrays = args
            .args
            .into_iter()
            .map(|arg| arg.into_array(n))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let out = self.evaluate(&arrays, n)?;
        if all_scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn floats(array: &ArrayRef) -> Result<&Float64Array> {
    array.as_primitive_opt::<Float64Type>().ok_or_else(|| {
        DataFusionError::Execution(format!("expected a number, got {}", array.data_type()))
    })
}

fn lists(array: &ArrayRef) -> Result<&ListArray> {
    array.as_list_opt::<i32>().ok_or_else(|| {
        DataFusionError::Execution(format!("expected a geometry, got {}", array.data_type()))
    })
}

/// A geometry decoded from its list form.
#[derive(Debug, Clone)]
enum Shape {
    Point(f64, f64),
    Circle(f64, f64, f64),
    Box(f64, f64, f64, f64),
    Polygon(Vec<(f64, f64)>),
}

impl Shape {
    fn decode(values: &[f64]) -> Option<Shape> {
        match values.len() {
            2 => Some(Shape::Point(values[0], values[1])),
            3 => Some(Shape::Circle(values[0], values[1], values[2])),
            4 => Some(Shape::Box(values[0], values[1], values[2], values[3])),
            n if n >= 6 && n % 2 == 0 => Some(Shape::Polygon(
                values.chunks(2).map(|c| (c[0], c[1])).collect(),
            )),
            _ => None,
        }
    }

    fn contains_point(&self, lon: f64, lat: f64) -> bool {
        match *self {
            Shape::Point(plon, plat) => sky::distance_deg(plon, plat, lon, lat) < 1e-12,
            Shape::Circle(clon, clat, r) => sky::distance_deg(clon, clat, lon, lat) <= r,
            Shape::Box(clon, clat, w, h) => sky::box_contains(clon, clat, w, h, lon, lat),
            Shape::Polygon(ref vertices) => sky::polygon_contains(vertices, lon, lat),
        }
    }

    /// Points on the boundary (and the vertices), for the approximate shape-in-shape tests.
    fn boundary(&self) -> Vec<(f64, f64)> {
        match *self {
            Shape::Point(lon, lat) => vec![(lon, lat)],
            Shape::Circle(clon, clat, r) => (0..32)
                .map(|i| {
                    let angle = i as f64 * std::f64::consts::TAU / 32.0;
                    destination(clon, clat, r, angle)
                })
                .collect(),
            Shape::Box(clon, clat, w, h) => sky::box_corners(clon, clat, w, h).to_vec(),
            Shape::Polygon(ref vertices) => vertices.clone(),
        }
    }

    fn centre(&self) -> (f64, f64) {
        match *self {
            Shape::Point(lon, lat) | Shape::Circle(lon, lat, _) | Shape::Box(lon, lat, _, _) => {
                (lon, lat)
            }
            Shape::Polygon(ref vertices) => sky::centroid_deg(vertices),
        }
    }

    fn contains(&self, other: &Shape) -> bool {
        match (self, other) {
            (_, Shape::Point(lon, lat)) => self.contains_point(*lon, *lat),
            (Shape::Circle(alon, alat, ar), Shape::Circle(blon, blat, br)) => {
                sky::distance_deg(*alon, *alat, *blon, *blat) + br <= *ar
            }
            (Shape::Point(..), _) => false,
            _ => other
                .boundary()
                .iter()
                .all(|&(lon, lat)| self.contains_point(lon, lat)),
        }
    }

    fn intersects(&self, other: &Shape) -> bool {
        match (self, other) {
            (Shape::Point(lon, lat), _) => other.contains_point(*lon, *lat),
            (_, Shape::Point(lon, lat)) => self.contains_point(*lon, *lat),
            (Shape::Circle(alon, alat, ar), Shape::Circle(blon, blat, br)) => {
                sky::distance_deg(*alon, *alat, *blon, *blat) <= ar + br
            }
            _ => {
                let (alon, alat) = self.centre();
                let (blon, blat) = other.centre();
                self.contains_point(blon, blat)
                    || other.contains_point(alon, alat)
                    || other
                        .boundary()
                        .iter()
                        .any(|&(lon, lat)| self.contains_point(lon, lat))
                    || self
                        .boundary()
                        .iter()
                        .any(|&(lon, lat)| other.contains_point(lon, lat))
            }
        }
    }

    fn area_deg2(&self) -> f64 {
        match *self {
            Shape::Point(..) => 0.0,
            Shape::Circle(_, _, r) => sky::circle_area_deg2(r),
            Shape::Box(clon, clat, w, h) => {
                let lat_lo = (clat - h / 2.0).max(-90.0).to_radians();
                let lat_hi = (clat + h / 2.0).min(90.0).to_radians();
                w.min(360.0).to_radians()
                    * (lat_hi.sin() - lat_lo.sin())
                    * (180.0 / std::f64::consts::PI).powi(2)
                    + 0.0 * clon
            }
            Shape::Polygon(ref vertices) => sky::polygon_area_deg2(vertices),
        }
    }
}

/// The point at `distance_deg` from (lon, lat) along position angle `bearing_rad`.
fn destination(lon_deg: f64, lat_deg: f64, distance_deg: f64, bearing_rad: f64) -> (f64, f64) {
    let (lat1, lon1, d) = (
        lat_deg.to_radians(),
        lon_deg.to_radians(),
        distance_deg.to_radians(),
    );
    let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * bearing_rad.cos()).asin();
    let lon2 =
        lon1 + (bearing_rad.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
    (lon2.to_degrees().rem_euclid(360.0), lat2.to_degrees())
}

fn shape_at(list: &ListArray, row: usize) -> Option<Shape> {
    if list.is_null(row) {
        return None;
    }
    let values = list.value(row);
    let values = values.as_primitive_opt::<Float64Type>()?;
    if values.null_count() > 0 {
        return None;
    }
    Shape::decode(values.values())
}

fn build_geometry(rows: impl Iterator<Item = Option<Vec<f64>>>) -> ArrayRef {
    let mut builder = ListBuilder::new(Float64Builder::new());
    for row in rows {
        match row {
            Some(values) => {
                builder.values().append_slice(&values);
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

impl GeometryUdf {
    fn evaluate(&self, arrays: &[ArrayRef], n: usize) -> Result<ArrayRef> {
        let numbers = || arrays.iter().map(floats).collect::<Result<Vec<_>>>();
        let row_values = |columns: &[&Float64Array], row: usize| -> Option<Vec<f64>> {
            columns
                .iter()
                .map(|c| (!c.is_null(row)).then(|| c.value(row)))
                .collect()
        };
        Ok(match self.op {
            Op::Distance => {
                let c = numbers()?;
                Arc::new(
                    (0..n)
                        .map(|i| {
                            row_values(&c, i).map(|v| sky::distance_deg(v[0], v[1], v[2], v[3]))
                        })
                        .collect::<Float64Array>(),
                )
            }
            Op::InBox => {
                let c = numbers()?;
                Arc::new(
                    (0..n)
                        .map(|i| {
                            row_values(&c, i)
                                .map(|v| sky::box_contains(v[2], v[3], v[4], v[5], v[0], v[1]))
                        })
                        .collect::<BooleanArray>(),
                )
            }
            Op::InPolygon => {
                let c = numbers()?;
                Arc::new(
                    (0..n)
                        .map(|i| {
                            row_values(&c, i).map(|v| {
                                let vertices: Vec<(f64, f64)> =
                                    v[2..].chunks(2).map(|p| (p[0], p[1])).collect();
                                sky::polygon_contains(&vertices, v[0], v[1])
                            })
                        })
                        .collect::<BooleanArray>(),
                )
            }
            Op::MakePoint | Op::MakeCircle | Op::MakeBox | Op::MakePolygon => {
                let c = numbers()?;
                if self.op == Op::MakePolygon && (c.len() < 6 || c.len() % 2 != 0) {
                    return Err(DataFusionError::Execution(
                        "POLYGON needs at least 3 vertices".into(),
                    ));
                }
                build_geometry((0..n).map(|i| row_values(&c, i)))
            }
            Op::Contains | Op::Intersects => {
                let (a, b) = (lists(&arrays[0])?, lists(&arrays[1])?);
                Arc::new(
                    (0..n)
                        .map(|i| {
                            let (sa, sb) = (shape_at(a, i)?, shape_at(b, i)?);
                            let hit = if self.op == Op::Contains {
                                sb.contains(&sa)
                            } else {
                                sa.intersects(&sb)
                            };
                            Some(i32::from(hit))
                        })
                        .collect::<Int32Array>(),
                )
            }
            Op::DistanceGeo => {
                let (a, b) = (lists(&arrays[0])?, lists(&arrays[1])?);
                Arc::new(
                    (0..n)
                        .map(|i| match (shape_at(a, i)?, shape_at(b, i)?) {
                            (Shape::Point(x1, y1), Shape::Point(x2, y2)) => {
                                Some(sky::distance_deg(x1, y1, x2, y2))
                            }
                            _ => None,
                        })
                        .collect::<Float64Array>(),
                )
            }
            Op::Coord1 | Op::Coord2 | Op::Area => {
                let a = lists(&arrays[0])?;
                Arc::new(
                    (0..n)
                        .map(|i| {
                            let shape = shape_at(a, i)?;
                            match (self.op, shape) {
                                (Op::Coord1, Shape::Point(lon, _)) => Some(lon),
                                (Op::Coord2, Shape::Point(_, lat)) => Some(lat),
                                (Op::Area, shape) => Some(shape.area_deg2()),
                                _ => None,
                            }
                        })
                        .collect::<Float64Array>(),
                )
            }
            Op::Centroid => {
                let a = lists(&arrays[0])?;
                build_geometry((0..n).map(|i| {
                    let (lon, lat) = shape_at(a, i)?.centre();
                    Some(vec![lon, lat])
                }))
            }
            Op::HealpixIndex => {
                let c = numbers()?;
                Arc::new(
                    (0..n)
                        .map(|i| {
                            let v = row_values(&c, i)?;
                            let order = v[0];
                            if !(0.0..=29.0).contains(&order) || order.fract() != 0.0 {
                                return None;
                            }
                            sky::healpix_index(order as u8, v[1], v[2]).map(|h| h as i64)
                        })
                        .collect::<Int64Array>(),
                )
            }
            Op::ConeCells => {
                let c = numbers()?;
                let mut builder = ListBuilder::new(arrow_array::builder::Int64Builder::new());
                for i in 0..n {
                    match row_values(&c, i) {
                        Some(v)
                            if (0.0..=29.0).contains(&v[3])
                                && v[1].abs() <= 90.0
                                && v[2] >= 0.0 =>
                        {
                            let bmoc = cdshealpix::nested::cone_coverage_approx(
                                v[3] as u8,
                                v[0].rem_euclid(360.0).to_radians(),
                                v[1].to_radians(),
                                v[2].max(1e-12).to_radians(),
                            );
                            let depth = v[3] as u8;
                            for cell in bmoc.flat_iter_cell() {
                                let shift = 2 * u32::from(depth - cell.depth);
                                let first = (cell.hash << shift) as i64;
                                for k in 0..(1i64 << shift) {
                                    builder.values().append_value(first + k);
                                }
                            }
                            builder.append(true);
                        }
                        _ => builder.append(false),
                    }
                }
                Arc::new(builder.finish())
            }
        })
    }
}
