//! Safe evaluation of arithmetic expressions such as SVAMP's `( ( 17.0 + 15.0 ) + 2.0 )`.
//!
//! A tiny recursive-descent parser over numbers, `+ - * /`, parentheses and unary signs. Nothing
//! else is accepted, so model text can never execute anything; depth is bounded so a hostile
//! `((((…` cannot overflow the stack.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum EquationError {
    #[error("empty expression")]
    Empty,
    #[error("unexpected `{found}` at byte {at}")]
    Unexpected { found: String, at: usize },
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    #[error("expression nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("division by zero")]
    DivisionByZero,
    #[error("result is not a finite number")]
    NotFinite,
}

const MAX_DEPTH: usize = 64;

/// Evaluates an arithmetic expression. Commas inside numbers (`1,000`) and `$` signs are allowed;
/// `x` and `×` are read as multiplication, `÷` as division.
pub fn evaluate(expr: &str) -> Result<f64, EquationError> {
    let tokens = tokenize(expr)?;
    if tokens.is_empty() {
        return Err(EquationError::Empty);
    }
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        depth: 0,
    };
    let v = p.expr()?;
    if let Some(t) = p.tokens.get(p.pos) {
        return Err(EquationError::Unexpected {
            found: t.text(),
            at: t.at,
        });
    }
    if !v.is_finite() {
        return Err(EquationError::NotFinite);
    }
    Ok(v)
}

/// True when both values agree to a relative tolerance of 1e-4 (absolute 1e-6 near zero): SVAMP
/// labels are written as `84.0 / 2.0`, model answers as `42` or `84 / 2`.
pub fn values_match(a: f64, b: f64) -> bool {
    let diff = (a - b).abs();
    diff <= 1e-6 || diff <= 1e-4 * a.abs().max(b.abs())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Num(f64),
    Op(char),
    Open,
    Close,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    tok: Tok,
    at: usize,
}

impl Token {
    fn text(&self) -> String {
        match self.tok {
            Tok::Num(n) => n.to_string(),
            Tok::Op(c) => c.to_string(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Token>, EquationError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() || c == '$' => i += 1,
            '0'..='9' | '.' => {
                let mut num = String::new();
                while i < chars.len() {
                    let (_, d) = chars[i];
                    if d.is_ascii_digit() || d == '.' {
                        num.push(d);
                    } else if d == ',' && i + 1 < chars.len() && chars[i + 1].1.is_ascii_digit() {
                        // thousands separator: skip it
                    } else {
                        break;
                    }
                    i += 1;
                }
                let v: f64 = num.parse().map_err(|_| EquationError::Unexpected {
                    found: num.clone(),
                    at,
                })?;
                out.push(Token {
                    tok: Tok::Num(v),
                    at,
                });
            }
            '+' | '-' | '*' | '/' => {
                out.push(Token {
                    tok: Tok::Op(c),
                    at,
                });
                i += 1;
            }
            '−' | '–' => {
                out.push(Token {
                    tok: Tok::Op('-'),
                    at,
                });
                i += 1;
            }
            'x' | 'X' | '×' | '·' => {
                out.push(Token {
                    tok: Tok::Op('*'),
                    at,
                });
                i += 1;
            }
            '÷' => {
                out.push(Token {
                    tok: Tok::Op('/'),
                    at,
                });
                i += 1;
            }
            '(' | '[' => {
                out.push(Token { tok: Tok::Open, at });
                i += 1;
            }
            ')' | ']' => {
                out.push(Token {
                    tok: Tok::Close,
                    at,
                });
                i += 1;
            }
            other => {
                return Err(EquationError::Unexpected {
                    found: other.to_string(),
                    at,
                })
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Tok> {
        self.tokens.get(self.pos).map(|t| t.tok)
    }

    fn expr(&mut self) -> Result<f64, EquationError> {
        let mut acc = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            self.pos += 1;
            let rhs = self.term()?;
            acc = if op == '+' { acc + rhs } else { acc - rhs };
        }
        Ok(acc)
    }

    fn term(&mut self) -> Result<f64, EquationError> {
        let mut acc = self.unary()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek() {
            self.pos += 1;
            let rhs = self.unary()?;
            if op == '*' {
                acc *= rhs;
            } else {
                if rhs == 0.0 {
                    return Err(EquationError::DivisionByZero);
                }
                acc /= rhs;
            }
        }
        Ok(acc)
    }

    fn unary(&mut self) -> Result<f64, EquationError> {
        match self.peek() {
            Some(Tok::Op('-')) => {
                self.pos += 1;
                self.descend(|p| p.unary()).map(|v| -v)
            }
            Some(Tok::Op('+')) => {
                self.pos += 1;
                self.descend(|p| p.unary())
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<f64, EquationError> {
        let Some(tok) = self.tokens.get(self.pos).copied() else {
            return Err(EquationError::UnexpectedEnd);
        };
        self.pos += 1;
        match tok.tok {
            Tok::Num(v) => Ok(v),
            Tok::Open => {
                let v = self.descend(|p| p.expr())?;
                match self.tokens.get(self.pos) {
                    Some(Token {
                        tok: Tok::Close, ..
                    }) => {
                        self.pos += 1;
                        Ok(v)
                    }
                    Some(t) => Err(EquationError::Unexpected {
                        found: t.text(),
                        at: t.at,
                    }),
                    None => Err(EquationError::UnexpectedEnd),
                }
            }
            _ => Err(EquationError::Unexpected {
                found: tok.text(),
                at: tok.at,
            }),
        }
    }

    fn descend(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<f64, EquationError>,
    ) -> Result<f64, EquationError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(EquationError::TooDeep);
        }
        let r = f(self);
        self.depth -= 1;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svamp_labels_evaluate() {
        assert_eq!(evaluate("( 84.0 / 2.0 )"), Ok(42.0));
        assert_eq!(evaluate("( ( 17.0 + 15.0 ) + 2.0 )"), Ok(34.0));
        assert_eq!(evaluate("( 7.0 * 30.0 )"), Ok(210.0));
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(evaluate("2 + 3 * 4"), Ok(14.0));
        assert_eq!(evaluate("20 - 5 - 3"), Ok(12.0));
        assert_eq!(evaluate("100 / 10 / 2"), Ok(5.0));
        assert_eq!(evaluate("(2 + 3) * 4"), Ok(20.0));
    }

    #[test]
    fn unary_signs_and_separators() {
        assert_eq!(evaluate("-3 + 5"), Ok(2.0));
        assert_eq!(evaluate("-(2 - 5)"), Ok(3.0));
        assert_eq!(evaluate("$1,000 + 24"), Ok(1024.0));
        assert_eq!(evaluate("3 x 4"), Ok(12.0));
        assert_eq!(evaluate("12 ÷ 4"), Ok(3.0));
    }

    #[test]
    fn rejects_anything_but_arithmetic() {
        assert!(matches!(
            evaluate("__import__('os')"),
            Err(EquationError::Unexpected { .. })
        ));
        assert!(matches!(
            evaluate("2 ** 3"),
            Err(EquationError::Unexpected { .. })
        ));
        assert_eq!(evaluate(""), Err(EquationError::Empty));
        assert_eq!(evaluate("(1 + 2"), Err(EquationError::UnexpectedEnd));
        assert!(matches!(
            evaluate("1 + 2)"),
            Err(EquationError::Unexpected { .. })
        ));
        assert_eq!(evaluate("5 / 0"), Err(EquationError::DivisionByZero));
        assert!(matches!(
            evaluate("1..2"),
            Err(EquationError::Unexpected { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert_eq!(evaluate(&deep), Err(EquationError::TooDeep));
        let deep_neg = "-".repeat(10_000) + "1";
        assert_eq!(evaluate(&deep_neg), Err(EquationError::TooDeep));
    }

    #[test]
    fn tolerance() {
        assert!(values_match(42.0, 42.00001));
        assert!(values_match(1.0 / 3.0, 0.33333));
        assert!(!values_match(42.0, 42.1));
        assert!(values_match(0.0, 0.0000001));
    }
}
