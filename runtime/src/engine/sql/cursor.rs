//! A cursor over a statement's tokens (whitespace dropped, each token with its byte offset),
//! for the statements the front end parses itself.

use crate::engine::error::syntax;
use crate::engine::error::QueryError;
use crate::engine::params;
use datafusion::sql::sqlparser::tokenizer::Token;

pub(crate) struct Cursor<'a> {
    sql: &'a str,
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(sql: &'a str) -> Result<Self, QueryError> {
        let raw = params::tokenize(sql)?;
        let offsets = params::Offsets::new(sql);
        let tokens = raw
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
            .map(|t| {
                let at = offsets.at(t.span.start);
                (t.token, at)
            })
            .collect();
        Ok(Cursor {
            sql,
            tokens,
            pos: 0,
        })
    }

    pub(crate) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    /// Steps over the current token.
    pub(crate) fn advance(&mut self) {
        self.pos += 1;
    }

    /// Whether the statement starts with one of these (unquoted) words.
    pub(crate) fn starts_with_kw(sql: &str, kws: &[&str]) -> Result<bool, QueryError> {
        let cursor = Cursor::new(sql)?;
        Ok(kws.iter().any(|kw| cursor.peek_kw(kw)))
    }

    fn is_kw(token: Option<&Token>, kw: &str) -> bool {
        matches!(token, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    pub(crate) fn peek_kw(&self, kw: &str) -> bool {
        Self::is_kw(self.peek(), kw)
    }

    pub(crate) fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn eat_kws(&mut self, kws: &[&str]) -> bool {
        let all = kws
            .iter()
            .enumerate()
            .all(|(i, kw)| Self::is_kw(self.tokens.get(self.pos + i).map(|(t, _)| t), kw));
        if all {
            self.pos += kws.len();
        }
        all
    }

    pub(crate) fn expect_kw(&mut self, kw: &str) -> Result<(), QueryError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.error(kw))
        }
    }

    pub(crate) fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, token: &Token) -> Result<(), QueryError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(&format!("'{token}'")))
        }
    }

    /// The byte offset of the current token (the statement's length at its end).
    pub(crate) fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.sql.len(), |(_, at)| *at)
    }

    /// The statement's text from `start` to the current token, trimmed.
    pub(crate) fn text_since(&self, start: usize) -> &'a str {
        self.sql.get(start..self.offset()).unwrap_or("").trim()
    }

    pub(crate) fn error(&self, expected: &str) -> QueryError {
        let found = self
            .peek()
            .map_or_else(|| "end of input".to_owned(), |t| format!("'{t}'"));
        syntax(format!(
            "[PARSE_SYNTAX_ERROR] Syntax error at or near {found}: expected {expected}"
        ))
    }

    pub(crate) fn ident(&mut self) -> Result<String, QueryError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let value = w.value.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error("an identifier")),
        }
    }

    pub(crate) fn object_name(&mut self) -> Result<Vec<String>, QueryError> {
        let mut parts = vec![self.ident()?.to_lowercase()];
        while self.eat(&Token::Period) {
            parts.push(self.ident()?.to_lowercase());
        }
        Ok(parts)
    }

    pub(crate) fn string(&mut self) -> Result<String, QueryError> {
        match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
                let value = s.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error("a string literal")),
        }
    }

    /// An option value: a string, a number or a bare word (`true`).
    pub(crate) fn option_value(&mut self) -> Result<String, QueryError> {
        let value = match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => s.clone(),
            Some(Token::Number(n, _)) => n.clone(),
            Some(Token::Word(w)) => w.value.clone(),
            _ => return Err(self.error("an option value")),
        };
        self.pos += 1;
        Ok(value)
    }

    pub(crate) fn end(&mut self) -> Result<(), QueryError> {
        while self.eat(&Token::SemiColon) {}
        if self.peek().is_some() {
            return Err(self.error("the end of the statement"));
        }
        Ok(())
    }
}
