//! FITS headers (FITS 4.0 §4): 80-character cards in 2880-byte blocks, ending at `END`.
//!
//! Cards keep their raw text so a cutout can copy the original header verbatim and change only
//! the keywords it must (NAXISn, CRPIXn, checksums). Values are parsed on demand: strings with
//! doubled quotes, logicals, integers and reals (with `D` exponents).

/// Bytes per FITS block.
pub const BLOCK: u64 = 2880;
/// Bytes per card.
pub const CARD: usize = 80;

/// A parsed card value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Complex numbers and anything else, verbatim.
    Other(String),
}

/// One card: keyword, value (for `KEY = value` cards) and the raw 80 characters.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub key: String,
    pub value: Option<Value>,
    pub raw: String,
}

/// The cards of one header, in order, without `END`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub cards: Vec<Card>,
}

/// Outcome of parsing header bytes.
pub enum Parsed {
    /// The header and its length in bytes (a multiple of [`BLOCK`]).
    Complete(Header, u64),
    /// `END` not seen yet: more bytes are needed.
    NeedMore,
}

/// Parses the header at the start of `bytes`. Fails on bytes that are not FITS cards.
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut cards = Vec::new();
    for (i, raw) in bytes.chunks_exact(CARD).enumerate() {
        if !raw.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(format!(
                "card {} holds bytes that are not printable ASCII (not a FITS header)",
                i + 1
            ));
        }
        // Checked above: printable ASCII is valid UTF-8.
        let raw = String::from_utf8_lossy(raw).into_owned();
        let key = raw[..8].trim_end().to_string();
        if key == "END" {
            let used = ((i + 1) * CARD) as u64;
            return Ok(Parsed::Complete(Header { cards }, super::padded_len(used)));
        }
        if i == 0 && key != "SIMPLE" && key != "XTENSION" {
            return Err("the header does not start with SIMPLE or XTENSION".into());
        }
        let value = (&raw[8..10] == "= ").then(|| parse_value(&raw[10..]));
        cards.push(Card { key, value, raw });
    }
    Ok(Parsed::NeedMore)
}

fn parse_value(text: &str) -> Value {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return Value::Str(out.trim_end().to_string());
    }
    let token = text.split('/').next().unwrap_or("").trim();
    match token {
        "T" => Value::Bool(true),
        "F" => Value::Bool(false),
        _ => {
            if let Ok(i) = token.parse::<i64>() {
                Value::Int(i)
            } else if let Ok(f) = token.replace(['D', 'd'], "E").parse::<f64>() {
                Value::Float(f)
            } else {
                Value::Other(token.to_string())
            }
        }
    }
}

impl Header {
    /// The value of the first card named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.cards
            .iter()
            .find(|c| c.key == key)
            .and_then(|c| c.value.as_ref())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A number (integer or real).
    pub fn float(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            // Some writers quote numbers.
            Value::Str(s) => s.trim().replace(['D', 'd'], "E").parse().ok(),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    /// A string value, trimmed; `None` when absent or empty.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::Str(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// `NAXIS` and the axis lengths, NAXIS1 first.
    pub fn axes(&self) -> Vec<u64> {
        let n = self.int("NAXIS").unwrap_or(0).clamp(0, 999) as usize;
        (1..=n)
            .map(|i| self.int(&format!("NAXIS{i}")).unwrap_or(0).max(0) as u64)
            .collect()
    }

    /// Bytes of the data unit that follows this header, before padding (FITS 4.0 eq. 1-2).
    pub fn data_bytes(&self) -> u64 {
        let axes = self.axes();
        if axes.is_empty() {
            return 0;
        }
        let bitpix = self.int("BITPIX").unwrap_or(8).unsigned_abs();
        let gcount = self.int("GCOUNT").unwrap_or(1).max(0) as u64;
        let pcount = self.int("PCOUNT").unwrap_or(0).max(0) as u64;
        // Random groups (NAXIS1 = 0 in a primary header) leave out the first axis.
        let product: u64 = if axes[0] == 0 && self.bool("GROUPS") == Some(true) {
            axes[1..].iter().product()
        } else {
            axes.iter().product()
        };
        bitpix / 8 * gcount * (pcount + product)
    }

    /// Replaces the value of `key` (or appends the card before the end) with a formatted card.
    pub fn set(&mut self, key: &str, value: Value, comment: &str) {
        let raw = format_card(key, &value, comment);
        let card = Card {
            key: key.to_string(),
            value: Some(value),
            raw,
        };
        match self.cards.iter_mut().find(|c| c.key == key) {
            Some(existing) => *existing = card,
            None => self.cards.push(card),
        }
    }

    /// Inserts a card right after the card named `after` (or at the end).
    pub fn insert_after(&mut self, after: &str, key: &str, value: Value, comment: &str) {
        if self.contains(key) {
            self.set(key, value, comment);
            return;
        }
        let raw = format_card(key, &value, comment);
        let card = Card {
            key: key.to_string(),
            value: Some(value),
            raw,
        };
        let at = self
            .cards
            .iter()
            .rposition(|c| c.key == after)
            .map(|i| i + 1)
            .unwrap_or(self.cards.len());
        self.cards.insert(at, card);
    }

    /// Appends a commentary card (`HISTORY`, `COMMENT`: FITS 4.0 §4.4.2.4), its text cut to the card.
    pub fn push_commentary(&mut self, key: &str, text: &str) {
        let mut raw = format!("{key:<8}{text}");
        raw.truncate(CARD);
        self.cards.push(Card {
            key: key.to_string(),
            value: None,
            raw: format!("{raw:<80}"),
        });
    }

    /// Drops every card named `key`.
    pub fn remove(&mut self, key: &str) {
        self.cards.retain(|c| c.key != key);
    }

    /// The header as FITS bytes: cards, `END`, blank-padded to a whole block.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.cards.len() + 1) * CARD);
        for card in &self.cards {
            let mut raw = card.raw.clone().into_bytes();
            raw.resize(CARD, b' ');
            out.extend_from_slice(&raw);
        }
        out.extend_from_slice(format!("{:<80}", "END").as_bytes());
        out.resize(super::padded_len(out.len() as u64) as usize, b' ');
        out
    }
}

/// One card in the fixed format (FITS 4.0 §4.2): values right-justified in columns 11–30. Text is
/// kept to what a card may hold: printable ASCII (other characters are dropped), a string value of
/// at most 68 characters, the whole card cut at 80.
pub fn format_card(key: &str, value: &Value, comment: &str) -> String {
    let value_text = match value {
        Value::Str(s) => {
            // Quotes are doubled; a doubled quote is never cut in half.
            let mut quoted = String::new();
            for c in printable(s).chars() {
                let width = if c == '\'' { 2 } else { 1 };
                if quoted.len() + width > 68 {
                    break;
                }
                quoted.push(c);
                if c == '\'' {
                    quoted.push(c);
                }
            }
            format!("{:<20}", format!("'{quoted:<8}'"))
        }
        Value::Bool(b) => format!("{:>20}", if *b { "T" } else { "F" }),
        Value::Int(i) => format!("{i:>20}"),
        Value::Float(f) => format!("{:>20}", format_real(*f)),
        Value::Other(s) => format!("{:>20}", printable(s)),
    };
    let mut card = format!("{key:<8}= {value_text}");
    if !comment.is_empty() {
        card.push_str(" / ");
        card.push_str(&printable(comment));
    }
    card.truncate(CARD);
    format!("{card:<80}")
}

/// The printable ASCII characters of `text` (all a FITS card may contain).
fn printable(text: &str) -> String {
    text.chars().filter(|c| (' '..='~').contains(c)).collect()
}

/// A real in FITS syntax that round-trips exactly (always with a decimal point or exponent).
pub fn format_real(f: f64) -> String {
    let text = format!("{f:?}");
    let text = if text.contains('e') {
        text.replace('e', "E")
    } else {
        text
    };
    if text.len() > 20 {
        format!("{f:.13E}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(cards: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cards {
            out.extend_from_slice(format!("{c:<80}").as_bytes());
        }
        out.extend_from_slice(format!("{:<80}", "END").as_bytes());
        out.resize(2880, b' ');
        out
    }

    #[test]
    fn parses_values_of_every_kind() {
        let bytes = header_bytes(&[
            "SIMPLE  =                    T / conforms",
            "BITPIX  =                  -32",
            "NAXIS   =                    2",
            "NAXIS1  =                  100",
            "NAXIS2  =                   50",
            "CRVAL1  =   1.2345678901234D+02 / D exponent",
            "OBJECT  = 'M 51 ''core'' /x'    / quoted slash and quote",
            "COMMENT just text = not a value",
        ]);
        let Parsed::Complete(h, len) = parse(&bytes).expect("valid") else {
            panic!("END not found")
        };
        assert_eq!(len, 2880);
        assert_eq!(h.bool("SIMPLE"), Some(true));
        assert_eq!(h.int("BITPIX"), Some(-32));
        assert_eq!(h.axes(), vec![100, 50]);
        assert_eq!(h.data_bytes(), 100 * 50 * 4);
        assert_eq!(h.float("CRVAL1"), Some(123.45678901234));
        assert_eq!(h.text("OBJECT").as_deref(), Some("M 51 'core' /x"));
        assert!(h.get("COMMENT").is_none());
    }

    #[test]
    fn asks_for_more_until_end_and_refuses_non_fits() {
        let bytes = header_bytes(&["SIMPLE  =                    T"]);
        assert!(matches!(parse(&bytes[..80]), Ok(Parsed::NeedMore)));
        assert!(parse(b"PK\x03\x04 this is a zip file, not FITS at all........................................").is_err());
    }

    #[test]
    fn cards_hold_printable_ascii_only() {
        let card = format_card("TUNIT1", &Value::Str("µm\t/s".into()), "café");
        assert_eq!(card.len(), 80);
        assert!(card.is_ascii());
        assert!(card.starts_with("TUNIT1  = 'm/s     '"), "{card}");
        let long = format_card("TTYPE1", &Value::Str("x".repeat(100)), "");
        assert_eq!(long.len(), 80);
        let Parsed::Complete(h, _) =
            parse(format!("{:<80}{long}{:<80}", "SIMPLE  = T", "END").as_bytes()).expect("valid")
        else {
            panic!("END not found")
        };
        assert_eq!(h.text("TTYPE1").map(|t| t.len()), Some(68));
    }

    #[test]
    fn set_and_serialise_round_trip() {
        let mut h = Header::default();
        h.set("SIMPLE", Value::Bool(true), "");
        h.set("CRPIX1", Value::Float(-12.5), "moved by the cutout");
        h.set("CRPIX1", Value::Float(0.1 + 0.2), "");
        h.set("CTYPE1", Value::Str("RA---TAN".into()), "");
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), 2880);
        let Parsed::Complete(back, _) = parse(&bytes).expect("valid") else {
            panic!("END not found")
        };
        assert_eq!(back.float("CRPIX1"), Some(0.1 + 0.2));
        assert_eq!(back.text("CTYPE1").as_deref(), Some("RA---TAN"));
        assert_eq!(back.cards.len(), 3);
    }
}
