//! ADQL 2.1 front end: parse with sqlparser (an ADQL dialect), validate against ADQL's grammar,
//! rewrite for DataFusion (ADQL 2.1, IVOA Recommendation 2023-12-15).
//!
//! The pipeline is `parse` → [`validate::validate`] → [`rewrite::rewrite`]; the result is a
//! sqlparser `Statement` that [`crate::engine`] hands to DataFusion's planner directly (no SQL text
//! round trip). Every error carries the position (line, column) of the offending token.

pub mod dialect;
pub mod functions;
pub mod rewrite;
pub mod udf;
pub mod validate;

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Span, Token, Tokenizer};

pub use dialect::AdqlDialect;
pub use functions::FunctionCatalog;
pub use rewrite::{PositionColumns, TableResolver};

/// A query ADQL does not accept, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", position.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
pub struct AdqlError {
    /// What is wrong.
    pub message: String,
    /// Line and column (1-based) of the problem, when known.
    pub position: Option<(u64, u64)>,
}

impl AdqlError {
    /// An error at `span` (an empty span means "position unknown").
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        let position = (span.start.line > 0).then_some((span.start.line, span.start.column));
        Self {
            message: message.into(),
            position,
        }
    }
}

/// Parses and validates one ADQL query; returns the statement before rewriting.
pub fn parse(adql: &str, functions: &FunctionCatalog) -> Result<Statement, AdqlError> {
    let text = adql.trim().trim_end_matches(';');
    if text.is_empty() {
        return Err(AdqlError {
            message: "the query is empty".into(),
            position: None,
        });
    }
    let tokens = Tokenizer::new(&AdqlDialect, text)
        .tokenize_with_location()
        .map_err(|e| parse_error(ParserError::TokenizerError(e.to_string()), text))?;
    // Operators sqlparser knows but ADQL does not.
    for token in &tokens {
        let what = match token.token {
            Token::DoubleEq => "== is not ADQL: use =",
            Token::DoubleColon => ":: casts are not ADQL: use CAST(x AS type)",
            // Also what keeps sqlparser's subscript and slice parsing (which backtracks, and
            // took 20 s over 250 bytes of `[b&L:++++…`, found by fuzzing) out of reach.
            Token::LBracket | Token::RBracket => {
                "[ ] is not ADQL: quote odd column names with double quotes"
            }
            Token::Colon => ": is not ADQL",
            _ => continue,
        };
        return Err(AdqlError {
            message: what.to_string(),
            position: Some((token.span.start.line, token.span.start.column)),
        });
    }
    let mut statements = Parser::new(&AdqlDialect)
        .with_recursion_limit(64)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| parse_error(e, text))?;
    if statements.len() != 1 {
        return Err(AdqlError {
            message: "exactly one query is allowed".into(),
            position: None,
        });
    }
    let statement = statements.remove(0);
    validate::validate(&statement, functions)?;
    Ok(statement)
}

/// Parses, validates and rewrites a query for DataFusion.
pub fn translate(
    adql: &str,
    functions: &FunctionCatalog,
    tables: &dyn TableResolver,
) -> Result<Statement, AdqlError> {
    let mut statement = parse(adql, functions)?;
    if let Statement::Query(query) = &mut statement {
        rewrite::rewrite(query, tables)?;
    }
    Ok(statement)
}

/// sqlparser reports "... at Line: 1, Column: 8"; keep the message and lift the position out.
fn parse_error(error: ParserError, query: &str) -> AdqlError {
    let text = match error {
        ParserError::TokenizerError(t) | ParserError::ParserError(t) => t,
        ParserError::RecursionLimitExceeded => {
            return AdqlError {
                message: "the query is nested too deeply".into(),
                position: None,
            };
        }
    };
    let position = text.rfind(" at Line: ").and_then(|at| {
        let tail = &text[at + " at Line: ".len()..];
        let (line, rest) = tail.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((at, line.trim().parse().ok()?, column.parse().ok()?))
    });
    match position {
        Some((at, line, column)) => AdqlError {
            message: format!("syntax error: {}", text[..at].trim()),
            position: Some((line, column)),
        },
        None if text.ends_with("found: EOF") => {
            // The query ended too early: point just past its last character.
            let line = query.lines().count().max(1) as u64;
            let column = query.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
            AdqlError {
                message: format!("syntax error: {text} (the query ends too early)"),
                position: Some((line, column)),
            }
        }
        None => AdqlError {
            message: format!("syntax error: {text}"),
            position: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoTables;
    impl TableResolver for NoTables {
        fn position_columns(&self, table: &[String]) -> Option<PositionColumns> {
            (table.last().map(String::as_str) == Some("gaia_source")).then(|| PositionColumns {
                lon: "ra".into(),
                lat: "dec".into(),
            })
        }
    }

    fn sql(adql: &str) -> String {
        translate(adql, &FunctionCatalog::default(), &NoTables)
            .expect("valid ADQL")
            .to_string()
    }

    fn error(adql: &str) -> AdqlError {
        parse(adql, &FunctionCatalog::default()).expect_err("invalid ADQL")
    }

    #[test]
    fn subscripts_and_colons_are_refused_before_parsing() {
        let e = error("SELECT a[1] FROM t");
        assert!(e.message.starts_with("[ ] is not ADQL"), "{}", e.message);
        assert_eq!(e.position, Some((1, 9)));
        assert_eq!(
            error("SELECT a FROM t WHERE b = :x").message,
            ": is not ADQL"
        );
        // Inside strings and quoted names they are text.
        sql("SELECT \"a[1]\" FROM t WHERE b = 'x:[y]'");
    }

    proptest::proptest! {
        /// Whatever arrives in QUERY, the front end answers with a query or an error, never a panic.
        #[test]
        fn never_panics_on_token_soup(words in proptest::collection::vec(proptest::sample::select(vec![
            "SELECT", "TOP", "5", "DISTINCT", "*", "FROM", "t", "a.b", "WHERE", "1", "=", "CONTAINS", "(", ")", ",",
            "POINT", "CIRCLE", "'ICRS'", "ra", "dec", "0.5", "-", "AND", "OR", "NOT", "JOIN", "ON", "AS", "x",
            "GROUP", "BY", "ORDER", "HAVING", "UNION", "WITH", "OFFSET", "CAST", "INTEGER", "IN", "'s'", "\"q\"",
            "DISTANCE", "POLYGON", "BOX", "||", "<", ">=", "IS", "NULL", "BETWEEN", "LIKE", "EXISTS", ";",
        ]), 0..40)) {
            let text = words.join(" ");
            let _ = translate(&text, &FunctionCatalog::default(), &NoTables);
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
            let _ = translate(&text, &FunctionCatalog::default(), &NoTables);
        }
    }

    #[test]
    fn top_becomes_limit_and_keeps_offset() {
        assert_eq!(
            sql("SELECT TOP 5 a FROM t OFFSET 3"),
            "SELECT a FROM t LIMIT 5 OFFSET 3"
        );
    }

    #[test]
    fn cone_on_a_positioned_table_prunes_by_healpix() {
        let out = sql(
            "SELECT source_id FROM gaiadr3.gaia_source WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 266.4, -29.0, 0.5))",
        );
        assert!(
            out.contains("\"gaia_source\".\"_healpix_29\" BETWEEN"),
            "{out}"
        );
        assert!(
            out.contains("adql_distance(ra, dec, 266.4, -29.0) <= 0.5"),
            "{out}"
        );
    }

    #[test]
    fn cone_on_an_unknown_table_has_no_pruning() {
        let out = sql("SELECT x FROM other WHERE CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 0.1)) = 1");
        assert!(!out.contains("_healpix_29"), "{out}");
        assert!(out.contains("adql_distance(ra, dec, 1, 2) <= 0.1"), "{out}");
    }

    #[test]
    fn crossmatch_join_gets_a_cell_equi_join() {
        let out = sql(
            "SELECT a.ra FROM gaiadr3.gaia_source AS a JOIN gaiadr3.gaia_source AS b ON DISTANCE(a.ra, a.dec, b.ra, b.dec) < 0.001",
        );
        assert!(out.contains("unnest(adql_cone_cells"), "{out}");
        // The left catalogue's cell is its own index coarsened to the cone cells' order (13).
        assert!(
            out.contains("\"a\".\"_healpix_29\" / 4294967296 = \"b\".\"__xm_cell1\""),
            "{out}"
        );
    }

    #[test]
    fn comma_join_crossmatch_becomes_a_cell_join() {
        let out = sql(
            "SELECT a.ra FROM gaiadr3.gaia_source AS a, gaiadr3.gaia_source AS b WHERE 1=CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.01)) AND a.ra > 10",
        );
        assert!(
            out.contains(" JOIN (SELECT *, unnest(adql_cone_cells"),
            "{out}"
        );
        assert!(!out.contains(" WHERE 1 = "), "{out}");
    }

    #[test]
    fn functions_with_other_names_in_datafusion_are_renamed() {
        let out = sql("SELECT LOG(x), CEILING(x), TRUNCATE(x, 2), MOD(x, 3) FROM t");
        assert_eq!(out, "SELECT ln(x), ceil(x), trunc(x, 2), (x % 3) FROM t");
    }

    #[test]
    fn errors_name_the_problem_and_position() {
        let e = error("SELECT ra FROM t WHERE");
        assert!(e.position.is_some(), "{e}");
        let e = error("SELECT TOP 3 ra, dec FROM t LIMIT 3");
        assert!(e.message.contains("LIMIT"), "{e}");
        let e = error("SELECT ra FROM t WHERE CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 3))");
        assert!(e.message.contains("not a condition"), "{e}");
        assert_eq!(e.position, Some((1, 24)));
        let e = error("SELECT TAN2(x) FROM t");
        assert_eq!(e.message, "unknown function TAN2");
    }
}
