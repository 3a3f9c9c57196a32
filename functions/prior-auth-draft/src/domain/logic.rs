//! The policy `logic` expression: criterion ids joined by `AND`, `OR` and parentheses (`AND` binds
//! tighter), evaluated in three-valued logic so that unknown evidence stays unknown instead of passing or
//! failing silently.

use std::collections::BTreeMap;

use serde::Serialize;

/// The outcome of a criterion or of the whole policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    NotMet,
    InsufficientEvidence,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::NotMet => "not_met",
            Self::InsufficientEvidence => "insufficient_evidence",
        }
    }

    // Kleene: false dominates AND, true dominates OR, otherwise unknown.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::NotMet, _) | (_, Self::NotMet) => Self::NotMet,
            (Self::Met, Self::Met) => Self::Met,
            _ => Self::InsufficientEvidence,
        }
    }

    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Met, _) | (_, Self::Met) => Self::Met,
            (Self::NotMet, Self::NotMet) => Self::NotMet,
            _ => Self::InsufficientEvidence,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Expr {
    /// Only for a default value; a parsed expression never holds it.
    #[default]
    Empty,
    Criterion(String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogicError {
    #[error("unexpected character at position {0}")]
    Character(usize),
    #[error("unexpected `{0}`")]
    Token(String),
    #[error("unexpected end of expression")]
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Id(String),
    And,
    Or,
    Open,
    Close,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Self::Id(id) => id.clone(),
            Self::And => "AND".into(),
            Self::Or => "OR".into(),
            Self::Open => "(".into(),
            Self::Close => ")".into(),
        }
    }
}

fn tokenize(source: &str) -> Result<Vec<Token>, LogicError> {
    let mut tokens = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some((_, next)) = chars.next_if(|(_, n)| n.is_ascii_alphanumeric() || *n == '_') {
                    word.push(next);
                }
                tokens.push(match word.as_str() {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    _ => Token::Id(word),
                });
            }
            _ => return Err(LogicError::Character(at)),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self) -> Result<Expr, LogicError> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::Or(terms) })
    }

    fn and(&mut self) -> Result<Expr, LogicError> {
        let mut terms = vec![self.atom()?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            terms.push(self.atom()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::And(terms) })
    }

    fn atom(&mut self) -> Result<Expr, LogicError> {
        match self.next() {
            Some(Token::Id(id)) => Ok(Expr::Criterion(id)),
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    Some(other) => Err(LogicError::Token(other.text())),
                    None => Err(LogicError::End),
                }
            }
            Some(other) => Err(LogicError::Token(other.text())),
            None => Err(LogicError::End),
        }
    }
}

impl Expr {
    pub fn parse(source: &str) -> Result<Self, LogicError> {
        let mut parser = Parser { tokens: tokenize(source)?, at: 0 };
        let expr = parser.or()?;
        match parser.next() {
            None => Ok(expr),
            Some(extra) => Err(LogicError::Token(extra.text())),
        }
    }

    /// Criterion ids named by the expression, in order of first appearance.
    pub fn criteria(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<String>) {
        match self {
            Self::Empty => {}
            Self::Criterion(id) => {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
            Self::And(terms) | Self::Or(terms) => terms.iter().for_each(|t| t.collect(out)),
        }
    }

    /// A criterion missing from `results` counts as unknown, never as met.
    pub fn evaluate(&self, results: &BTreeMap<String, Status>) -> Status {
        match self {
            Self::Empty => Status::InsufficientEvidence,
            Self::Criterion(id) => results.get(id).copied().unwrap_or(Status::InsufficientEvidence),
            Self::And(terms) => terms.iter().fold(Status::Met, |acc, t| acc.and(t.evaluate(results))),
            Self::Or(terms) => terms.iter().fold(Status::NotMet, |acc, t| acc.or(t.evaluate(results))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status::{InsufficientEvidence as U, Met as T, NotMet as F};
    use super::*;

    fn eval(source: &str, values: &[(&str, Status)]) -> Status {
        let results = values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        Expr::parse(source).unwrap().evaluate(&results)
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // Read as C1 OR (C2 AND C3): true although C2 AND C3 is false.
        assert_eq!(eval("C1 OR C2 AND C3", &[("C1", T), ("C2", F), ("C3", F)]), T);
        // Read as (C1 OR C2) AND C3 it would be true; with precedence C1 false, C2 AND C3 false.
        assert_eq!(eval("C1 OR C2 AND C3", &[("C1", F), ("C2", T), ("C3", F)]), F);
        assert_eq!(eval("(C1 OR C2) AND C3", &[("C1", F), ("C2", T), ("C3", T)]), T);
    }

    #[test]
    fn every_shared_policy_expression_parses() {
        for source in [
            "C1 AND (C2 OR C3 OR C4 OR C5)",
            "C1 AND C2 AND (C3 OR C4)",
            "C1 AND C2 AND (C3 OR (C4 AND C5))",
            "C1 AND (C2 OR C3) AND (C4 OR C5) AND C6",
        ] {
            let expr = Expr::parse(source).unwrap();
            assert!(expr.criteria().iter().all(|c| c.starts_with('C')), "{source}");
        }
        assert_eq!(Expr::parse("C1 AND (C2 OR C3) AND (C4 OR C5) AND C6").unwrap().criteria().len(), 6);
    }

    #[test]
    fn unknown_is_kept_unless_the_other_side_decides() {
        assert_eq!(eval("C1 AND C2", &[("C1", T), ("C2", U)]), U);
        assert_eq!(eval("C1 AND C2", &[("C1", F), ("C2", U)]), F);
        assert_eq!(eval("C1 OR C2", &[("C1", T), ("C2", U)]), T);
        assert_eq!(eval("C1 OR C2", &[("C1", F), ("C2", U)]), U);
        assert_eq!(eval("C1 AND C2", &[("C1", T)]), U, "a missing result is unknown, not met");
    }

    #[test]
    fn malformed_expressions_are_rejected() {
        assert_eq!(Expr::parse("C1 AND"), Err(LogicError::End));
        assert_eq!(Expr::parse("(C1 OR C2"), Err(LogicError::End));
        assert_eq!(Expr::parse("C1 C2"), Err(LogicError::Token("C2".into())));
        assert_eq!(Expr::parse("C1 & C2"), Err(LogicError::Character(3)));
        assert_eq!(Expr::parse("AND C1"), Err(LogicError::Token("AND".into())));
    }
}
