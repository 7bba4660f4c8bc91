//! The ADQL 2.1 lexical rules as a sqlparser dialect (ADQL 2.1 §2.1).
//!
//! sqlparser's grammar is a superset of ADQL's; the dialect only fixes what the tokenizer and parser
//! must do differently: regular identifiers start with a letter (never `_`), delimited identifiers use
//! double quotes, `TOP` comes after `DISTINCT`, and adjacent string literals separated by whitespace or
//! comments concatenate (SQL-92, used by the IVOA corpus). Everything else sqlparser accepts but ADQL
//! does not is refused by [`super::validate`].

use datafusion::sql::sqlparser::dialect::Dialect;

/// sqlparser dialect for ADQL 2.1.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdqlDialect;

impl Dialect for AdqlDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic()
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"'
    }

    fn supports_string_literal_concatenation(&self) -> bool {
        true
    }

    fn supports_string_literal_concatenation_with_newline(&self) -> bool {
        true
    }
}
