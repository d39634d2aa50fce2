//! Executes a parsed template with Go's semantics.

use super::funcs::{call, MAX_OUTPUT};
use super::parse::{Arg, Branch, Cmd, Node, Pipe, Tree};
use super::value::{format_value, truth, Value};
use super::TemplateContext;

const MAX_DEPTH: usize = 100;

enum Flow {
    Normal,
    Break,
    Continue,
}

/// An execution error, located at a command.
struct Failure {
    pos: usize,
    node: String,
    message: String,
}

type Res<T> = Result<T, Failure>;

struct Exec<'a> {
    tree: &'a Tree,
    ctx: &'a dyn TemplateContext,
    vars: Vec<(String, Value)>,
    depth: usize,
}

pub(super) fn execute(
    tree: &Tree,
    name: &str,
    src: &str,
    ctx: &dyn TemplateContext,
    out: &mut String,
) -> Result<(), String> {
    let mut exec = Exec {
        tree,
        ctx,
        vars: vec![("$".to_string(), Value::Labels)],
        depth: 0,
    };
    match exec.walk(&tree.root, &Value::Labels, out) {
        Ok(_) => Ok(()),
        Err(f) => {
            let before = &src[..f.pos.min(src.len())];
            let line = 1 + before.matches('\n').count();
            let col = before
                .rfind('\n')
                .map_or(before.len(), |i| before.len() - i - 1);
            Err(format!(
                "template: {name}:{line}:{col}: executing \"{name}\" at <{}>: {}",
                f.node, f.message
            ))
        }
    }
}

impl Exec<'_> {
    fn labels(&self) -> Vec<(String, String)> {
        self.ctx
            .labels()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn truth(&self, v: &Value) -> bool {
        truth(v, self.ctx.labels().is_empty())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Res<Flow> {
        for node in nodes {
            if out.len() > MAX_OUTPUT {
                return Err(Failure {
                    pos: 0,
                    node: String::new(),
                    message: "template output too large".to_string(),
                });
            }
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        match v {
                            Value::Nil => out.push_str("<no value>"),
                            v => out.push_str(&format_value(&v, &|| self.labels())),
                        }
                    }
                }
                Node::If(b) | Node::With(b) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(dot, &b.pipe)?;
                    let flow = if self.truth(&v) {
                        let new_dot = if matches!(node, Node::With(_)) {
                            v
                        } else {
                            dot.clone()
                        };
                        self.walk(&b.list, &new_dot, out)?
                    } else {
                        self.walk(&b.else_list, dot, out)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.range(b, dot, out)?,
                Node::Template { name, pipe, pos } => {
                    let Some(list) = self.tree.defines.get(name) else {
                        return Err(Failure {
                            pos: *pos,
                            node: format!("{{{{template {}}}}}", fenrir_common::go_quote(name)),
                            message: format!(
                                "template {} not defined",
                                fenrir_common::go_quote(name)
                            ),
                        });
                    };
                    let new_dot = match pipe {
                        Some(p) => self.pipeline(dot, p)?,
                        None => Value::Nil,
                    };
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(Failure {
                            pos: *pos,
                            node: format!("{{{{template {}}}}}", fenrir_common::go_quote(name)),
                            message: format!("exceeded maximum template depth ({MAX_DEPTH})"),
                        });
                    }
                    let saved =
                        std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
                    let result = self.walk(list, &new_dot, out);
                    self.vars = saved;
                    self.depth -= 1;
                    result?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, b: &Branch, dot: &Value, out: &mut String) -> Res<()> {
        let mark = self.vars.len();
        let value = self.commands(dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                .collect(),
            Value::Labels => self
                .labels()
                .into_iter()
                .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                .collect(),
            Value::Int(n) => (0..(*n).clamp(0, 1_000_000))
                .map(|i| (Value::Int(i), Value::Int(i)))
                .collect(),
            Value::Nil => Vec::new(),
            other => {
                return Err(Failure {
                    pos: b.pipe.pos,
                    node: b.pipe.to_string(),
                    message: format!(
                        "range can't iterate over {}",
                        format_value(other, &|| self.labels())
                    ),
                })
            }
        };
        if items.is_empty() {
            self.walk(&b.else_list, dot, out)?;
            self.vars.truncate(mark);
            return Ok(());
        }
        for (key, elem) in items {
            match b.pipe.decl.as_slice() {
                [] => {}
                [v] => self.vars.push((v.clone(), elem.clone())),
                [k, v, ..] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), elem.clone()));
                }
            }
            let flow = self.walk(&b.list, &elem, out)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(())
    }

    /// The pipeline's value, without binding its declared variables.
    fn commands(&mut self, dot: &Value, pipe: &Pipe) -> Res<Value> {
        let mut last: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = self
                .command(dot, cmd, last.take())
                .map_err(|message| Failure {
                    pos: cmd.pos,
                    node: cmd.to_string(),
                    message,
                })?;
            last = Some(v);
        }
        Ok(last.unwrap_or(Value::Nil))
    }

    fn pipeline(&mut self, dot: &Value, pipe: &Pipe) -> Res<Value> {
        let v = self.commands(dot, pipe)?;
        for name in &pipe.decl {
            if pipe.is_assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, dot: &Value, cmd: &Cmd, last: Option<Value>) -> Result<Value, String> {
        let first = &cmd.args[0];
        if let Arg::Ident(name) = first {
            return self.function(dot, name, &cmd.args[1..], last);
        }
        if cmd.args.len() > 1 || last.is_some() {
            return Err(format!("can't give argument to non-function {first}"));
        }
        if matches!(first, Arg::Nil) {
            return Err("nil is not a command".to_string());
        }
        self.arg(dot, first)
    }

    fn function(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        last: Option<Value>,
    ) -> Result<Value, String> {
        if name == "and" || name == "or" {
            if args.is_empty() && last.is_none() {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut value = Value::Nil;
            for a in args {
                value = self.arg(dot, a)?;
                let t = self.truth(&value);
                if (name == "and" && !t) || (name == "or" && t) {
                    return Ok(value);
                }
            }
            if let Some(l) = last {
                value = l;
            }
            return Ok(value);
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.arg(dot, a)?);
        }
        if let Some(l) = last {
            values.push(l);
        }
        call(name, values, self.ctx)
    }

    fn arg(&mut self, dot: &Value, arg: &Arg) -> Result<Value, String> {
        match arg {
            Arg::Ident(name) => self.function(dot, name, &[], None),
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Nil),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Number(v, _) => Ok(v.clone()),
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Field(fields) => self.fields(dot.clone(), fields),
            Arg::Var(name, fields) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: {name}"))?;
                self.fields(v, fields)
            }
            Arg::Chain(pipe, fields) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                }
                let v = self.commands(dot, pipe).map_err(|f| f.message);
                self.depth -= 1;
                self.fields(v?, fields)
            }
        }
    }

    fn fields(&self, mut v: Value, fields: &[String]) -> Result<Value, String> {
        for f in fields {
            v = match v {
                // missingkey=zero on map[string]string: a missing label is "".
                Value::Labels => Value::Str(self.ctx.label(f).unwrap_or("").to_string()),
                Value::Map(m) => m.get(f).cloned().unwrap_or(Value::Nil),
                Value::Nil => return Err(format!("nil pointer evaluating interface {{}}.{f}")),
                other => {
                    return Err(format!(
                        "can't evaluate field {f} in type {}",
                        other.type_name()
                    ))
                }
            };
        }
        Ok(v)
    }
}
