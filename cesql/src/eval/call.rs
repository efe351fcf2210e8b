//! Function calls: arguments evaluated and cast to the parameter types, then the body.

use super::Evaluator;
use crate::cast::{self, Param};
use crate::compile::Node;
use crate::error::ErrorKind;
use crate::functions::{Definition, UserFunction};
use crate::value::Value;

impl<'a> Evaluator<'a> {
    // Not inlined: the argument buffer would otherwise enlarge the frame of `eval`, which
    // recurses once per level of the tree.
    #[inline(never)]
    pub(super) fn builtin(
        &mut self,
        definition: &'static Definition,
        args: &'a [Node],
    ) -> Value<'a> {
        // Most calls have one argument (`INT(x)`, `LOWER(x)`): no argument buffer for them.
        if let [arg] = args {
            return match self.operand(arg) {
                (v, false) => {
                    let mut one = [cast::to_param(v, definition.param(0), &mut self.errors)];
                    definition.builtin.call(&mut one, &mut self.errors)
                }
                (_, true) => definition.returns.zero(),
            };
        }
        let mut values = Args::new();
        if !self.args(args, |i| definition.param(i), &mut values) {
            return definition.returns.zero();
        }
        definition
            .builtin
            .call(values.as_mut_slice(), &mut self.errors)
    }

    #[inline(never)]
    pub(super) fn user(&mut self, function: &'a UserFunction, args: &'a [Node]) -> Value<'a> {
        let mut values = Args::new();
        if !self.args(args, |i| Param::Typed(function.param(i)), &mut values) {
            return function.returns.zero();
        }
        match (function.body)(values.as_mut_slice()) {
            Ok(v) if v.value_type() == function.returns => v,
            Ok(v) => {
                let (name, returns) = (&function.name, function.returns);
                self.errors.push(ErrorKind::FunctionEvaluation, || {
                    format!(
                        "{name} returned a {} instead of a {returns}",
                        v.value_type()
                    )
                });
                returns.zero()
            }
            Err(message) => {
                let name = &function.name;
                self.errors.push(ErrorKind::FunctionEvaluation, || {
                    format!("{name}: {message}")
                });
                function.returns.zero()
            }
        }
    }

    /// Evaluates arguments into `out`, cast to their parameters; false if one failed (all are
    /// still evaluated, in order).
    fn args(
        &mut self,
        args: &'a [Node],
        param: impl Fn(usize) -> Param,
        out: &mut Args<'a>,
    ) -> bool {
        let mut complete = true;
        for (i, arg) in args.iter().enumerate() {
            match self.operand(arg) {
                (v, false) => out.push(cast::to_param(v, param(i), &mut self.errors)),
                (_, true) => complete = false,
            }
        }
        complete
    }
}

/// Arguments of one call: on the stack up to four, which every built-in but `CONCAT` and
/// `CONCAT_WS` fits, so evaluating a call does not allocate.
enum Args<'a> {
    Inline([Value<'a>; 4], usize),
    Heap(Vec<Value<'a>>),
}

impl<'a> Args<'a> {
    fn new() -> Args<'a> {
        Args::Inline(std::array::from_fn(|_| Value::Boolean(false)), 0)
    }

    fn push(&mut self, value: Value<'a>) {
        match self {
            Args::Inline(values, len) if *len < values.len() => {
                values[*len] = value;
                *len += 1;
            }
            Args::Inline(values, len) => {
                let mut heap: Vec<Value<'a>> = values[..*len]
                    .iter_mut()
                    .map(|v| std::mem::replace(v, Value::Boolean(false)))
                    .collect();
                heap.push(value);
                *self = Args::Heap(heap);
            }
            Args::Heap(values) => values.push(value),
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Value<'a>] {
        match self {
            Args::Inline(values, len) => &mut values[..*len],
            Args::Heap(values) => values,
        }
    }
}
