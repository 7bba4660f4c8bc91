//! `IN_UNIT(column, 'unit')` (ADQL 2.1 §4.9): the column's value times the factor from its unit —
//! the table's metadata for a published column, the FIELD's `unit` for an upload's — to the unit
//! asked for. A value whose unit is not known, a unit not understood, or units of different kinds
//! are refused with a message saying which.

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Function, Spanned, Value};

use super::{Rewriter, Scope, binary, normalise, number};
use crate::adql::AdqlError;
use crate::units;

impl Rewriter<'_> {
    /// `IN_UNIT(value, 'unit')` as `(value * factor)`.
    pub(super) fn in_unit(
        &self,
        f: &Function,
        args: &[Expr],
        scope: &Scope,
    ) -> Result<Expr, AdqlError> {
        let (value, target) = match args {
            [value, Expr::Value(v)] => match &v.value {
                Value::SingleQuotedString(unit) => (value, unit.as_str()),
                _ => return Err(AdqlError::new("IN_UNIT's unit must be a string", v.span())),
            },
            _ => {
                return Err(AdqlError::new(
                    "IN_UNIT takes a column and a unit string",
                    f.span(),
                ));
            }
        };
        let source = self.unit_of(value, scope).ok_or_else(|| {
            AdqlError::new(
                format!("IN_UNIT needs a column whose unit is known; {value} has none"),
                value.span(),
            )
        })?;
        let factor = units::conversion(&source, target)
            .map_err(|message| AdqlError::new(message, f.span()))?;
        Ok(Expr::Nested(Box::new(binary(
            value.clone(),
            BinaryOperator::Multiply,
            number(factor),
        ))))
    }

    /// The unit of a column reference (`None`: not a column, ambiguous, or no unit).
    fn unit_of(&self, value: &Expr, scope: &Scope) -> Option<String> {
        let (qualifier, column) = match value {
            Expr::Identifier(i) => (None, normalise(i)),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => (
                Some(normalise(&parts[parts.len() - 2])),
                normalise(&parts[parts.len() - 1]),
            ),
            Expr::Nested(inner) => return self.unit_of(inner, scope),
            _ => return None,
        };
        let units: Vec<String> = scope
            .iter()
            .filter(|t| qualifier.as_deref().is_none_or(|q| q == t.qualifier))
            .filter_map(|t| self.tables.column_unit(&t.name, &column))
            .collect();
        match units.as_slice() {
            [unit] if !unit.is_empty() => Some(unit.clone()),
            _ => None,
        }
    }
}
