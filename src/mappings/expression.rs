//! A mapping's expression, in CEL (the Common Expression Language): compiled once, its cost
//! bounded before it is accepted, and evaluated on JSON variables into a JSON object, or into
//! the instruction to skip the object.
//!
//! CEL has no loops, no recursion and no access to files, sockets or clocks beyond what is
//! passed in. What is left to bound is how much work one evaluation can do, and that is done
//! statically: the source's length, the number of nodes, the functions it may call (an
//! allow-list: none that multiplies its input, such as `replace`), and comprehensions (`map`,
//! `filter`, `all`, `exists`, `exists_one`) never nested inside one another. Each node is then
//! evaluated at most once per element of one list of the input, so the work is linear in the
//! size of the input, which the request limits bound. The output is bounded too.

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr, IdedExpr};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// The longest expression accepted, in bytes.
pub const MAX_SOURCE: usize = 4096;
/// The most nodes an expression may have once its macros are expanded.
pub const MAX_NODES: usize = 1024;
/// The largest output, in bytes of JSON.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Functions a mapping may call, besides operators. None of them makes its output larger than
/// a fixed multiple of its input.
const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "dyn",
    "lowerAscii",
    "upperAscii",
    "trim",
    "split",
    "join",
    "indexOf",
    "lastIndexOf",
    "substring",
    "charAt",
];

/// The value a mapping returns to skip the object (`skip`): a map no SCIM document can be.
const SKIP_KEY: &str = "$skip";

/// The standard environment with the strings extension (`lowerAscii`, `split`, `join`...).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // The strings extension is part of the crate; registering it twice is the only failure.
    if let Err(e) = env.add_extension(cel::extensions::strings) {
        tracing::error!(error = %e, "the CEL strings extension did not register");
    }
    Arc::new(env)
});

/// Why an expression is not accepted. Positions are 1-based line and column.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExpressionError {
    #[error("the expression is {0} bytes long; at most {MAX_SOURCE} are accepted")]
    TooLong(usize),
    #[error("the expression is empty")]
    Empty,
    #[error("{line}:{column}: {message}")]
    Syntax {
        line: u32,
        column: u32,
        message: String,
    },
    #[error("the expression has {0} nodes once expanded; at most {MAX_NODES} are accepted")]
    TooManyNodes(usize),
    #[error(
        "{line}:{column}: {name}() is not a function a mapping may call (allowed: {})",
        FUNCTIONS.join(", ")
    )]
    Function {
        line: u32,
        column: u32,
        name: String,
    },
    #[error(
        "{line}:{column}: a comprehension (map, filter, all, exists, exists_one) inside another \
         one: its cost would grow with the square of the input; chain them instead \
         (list.filter(...).map(...))"
    )]
    Nested { line: u32, column: u32 },
}

impl ExpressionError {
    /// Where in the expression the error is, when it is at one place.
    pub fn position(&self) -> Option<(u32, u32)> {
        match self {
            ExpressionError::Syntax { line, column, .. }
            | ExpressionError::Function { line, column, .. }
            | ExpressionError::Nested { line, column } => Some((*line, *column)),
            _ => None,
        }
    }
}

/// Why an evaluation gave no output.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Failed(String),
    #[error("the expression gave {0}, not a map of attributes (or skip)")]
    NotAMap(String),
    #[error("the output is {0} bytes of JSON; at most {MAX_OUTPUT} are accepted")]
    TooLarge(usize),
    #[error("the output holds a value JSON cannot represent: {0}")]
    NotJson(String),
}

/// What an evaluation gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Attributes to merge into the object. A null removes the attribute from what came
    /// before it (the built-in mapping's document, earlier mappings).
    Attributes(Map<String, Json>),
    /// The object is not to be written or sent.
    Skip,
}

/// A compiled expression that passed the bounds.
pub struct Expression {
    program: Program,
    needs: Needs,
}

/// Which members of each variable an expression reads: a variable it only reads members of
/// by name (`user.userName`, `has(user.title)`) needs only those converted for it; one it
/// uses otherwise (`size(user)`, `user["x"]`, as a whole) needs all of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Needs(std::collections::BTreeMap<String, Option<std::collections::BTreeSet<String>>>);

impl Needs {
    fn member(&mut self, variable: &str, member: &str) {
        if let Some(fields) = self
            .0
            .entry(variable.to_owned())
            .or_insert_with(|| Some(Default::default()))
        {
            fields.insert(member.to_owned());
        }
    }

    fn whole(&mut self, variable: &str) {
        self.0.insert(variable.to_owned(), None);
    }

    /// What all of `needs` read.
    pub fn union<'a>(needs: impl IntoIterator<Item = &'a Needs>) -> Needs {
        let mut out = Needs::default();
        for n in needs {
            for (variable, fields) in &n.0 {
                match fields {
                    None => out.whole(variable),
                    Some(fields) => fields.iter().for_each(|f| out.member(variable, f)),
                }
            }
        }
        out
    }

    /// The members of `variable` to convert: None for all of them.
    fn of(&self, variable: &str) -> Option<&std::collections::BTreeSet<String>> {
        static NONE: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        match self.0.get(variable) {
            Some(fields) => fields.as_ref(),
            None => Some(&NONE),
        }
    }
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expression")
    }
}

impl Expression {
    /// Compiles `source` and checks its bounds.
    pub fn compile(source: &str) -> Result<Expression, ExpressionError> {
        if source.len() > MAX_SOURCE {
            return Err(ExpressionError::TooLong(source.len()));
        }
        if source.trim().is_empty() {
            return Err(ExpressionError::Empty);
        }
        let program = guarded(|| ENV.compile(source))
            .map_err(|message| ExpressionError::Syntax {
                line: 1,
                column: 1,
                message,
            })?
            .map_err(|errors| {
                let first = errors.errors.first();
                let (line, column) = first.map_or((1, 1), |e| {
                    (
                        u32::try_from(e.pos.0.max(1)).unwrap_or(1),
                        u32::try_from(e.pos.1.max(0) + 1).unwrap_or(1),
                    )
                });
                let message = first.map_or_else(|| errors.to_string(), |e| e.msg.clone());
                ExpressionError::Syntax {
                    line,
                    column,
                    message,
                }
            })?;
        let mut check = Check {
            source,
            program: &program,
            nodes: 0,
            needs: Needs::default(),
        };
        check.walk(program.expression(), false)?;
        let needs = check.needs;
        Ok(Expression { program, needs })
    }

    /// `source` compiled, from a process-wide cache of the expressions compiled before (the
    /// write path runs a source's stored mappings on every write: each is compiled once).
    ///
    /// Fails as [`Expression::compile`] does.
    pub fn cached(source: &str) -> Result<Arc<Expression>, ExpressionError> {
        /// Distinct expressions kept; more empties the cache (it refills as they are used).
        const MAX_CACHED: usize = 512;
        static CACHE: LazyLock<Mutex<HashMap<String, Arc<Expression>>>> =
            LazyLock::new(Default::default);
        let cache = || {
            CACHE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(e) = cache().get(source) {
            return Ok(e.clone());
        }
        let compiled = Arc::new(Expression::compile(source)?);
        let mut cache = cache();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(source.to_owned(), compiled.clone());
        Ok(compiled)
    }

    /// What the expression reads of its variables (for [`Bindings::new`]).
    pub fn needs(&self) -> &Needs {
        &self.needs
    }

    /// Evaluates the expression with `variables` bound (and `skip`).
    pub fn evaluate(&self, variables: &[(&str, Json)]) -> Result<Outcome, EvalError> {
        let bound: Vec<(&str, &Json)> = variables.iter().map(|(n, v)| (*n, v)).collect();
        self.evaluate_in(&Bindings::new(&bound, &self.needs))
    }

    /// Evaluates the expression on variables converted before (one object, several
    /// expressions).
    pub fn evaluate_in(&self, bindings: &Bindings<'_>) -> Result<Outcome, EvalError> {
        let value = guarded(|| self.program.execute(&bindings.0))
            .map_err(EvalError::Failed)?
            .map_err(|e| EvalError::Failed(e.to_string()))?;
        let json = value
            .json()
            .map_err(|e| EvalError::NotJson(e.to_string()))?;
        let Json::Object(map) = json else {
            return Err(EvalError::NotAMap(kind_of(&json).to_owned()));
        };
        if map.len() == 1 && map.get(SKIP_KEY) == Some(&Json::Bool(true)) {
            return Ok(Outcome::Skip);
        }
        let size = serde_json::to_vec(&map).map_or(usize::MAX, |b| b.len());
        if size > MAX_OUTPUT {
            return Err(EvalError::TooLarge(size));
        }
        Ok(Outcome::Attributes(map))
    }
}

/// Variables converted to CEL values once, for every expression evaluated on one object. The
/// values borrow the JSON they were made from (strings and keys are not copied).
pub struct Bindings<'v>(Context<'v, 'v>);

impl<'v> Bindings<'v> {
    /// `variables` by name, each with the members `needs` says are read, and `skip`.
    pub fn new(variables: &[(&str, &'v Json)], needs: &Needs) -> Bindings<'v> {
        let mut context = Context::with_env(ENV.clone());
        for (name, value) in variables {
            let converted = match (value, needs.of(name)) {
                (Json::Object(map), Some(members)) => Box::new(CelMap::from(
                    members
                        .iter()
                        .filter_map(|m| map.get_key_value(m.as_str()))
                        .map(|(k, v)| (CelMapKey::from(k.as_str()), val(v)))
                        .collect::<std::collections::HashMap<_, _>>(),
                )),
                _ => val(value),
            };
            context.add_variable_as_val(*name, converted);
        }
        let mut skip = std::collections::HashMap::new();
        skip.insert(SKIP_KEY.to_owned(), Value::Bool(true));
        context.add_variable_from_value("skip", Value::from(skip));
        Bindings(context)
    }

    /// Adds a variable that is a map of strings (`source`, `provider`).
    #[must_use]
    pub fn with_strings(mut self, name: &str, pairs: &[(&str, &str)]) -> Bindings<'v> {
        let map: std::collections::HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = pairs
            .iter()
            .map(|(k, v)| {
                let v: Box<dyn Val + 'v> = Box::new(CelString::from((*v).to_owned()));
                (CelMapKey::from((*k).to_owned()), v)
            })
            .collect();
        self.0
            .add_variable_as_val(name, Box::new(CelMap::from(map)));
        self
    }
}

/// `json` as a CEL value, borrowing its strings. Numbers become what `cel::to_value` makes of
/// them: a non-negative integer `uint`, a negative one `int`, any other `double`.
fn val(json: &Json) -> Box<dyn Val + '_> {
    match json {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Box::new(CelUInt::from(u)),
            (None, Some(i)) => Box::new(CelInt::from(i)),
            (None, None) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => Box::new(CelList::from(items.iter().map(val).collect::<Vec<_>>())),
        Json::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), val(v)))
                .collect::<std::collections::HashMap<_, _>>(),
        )),
    }
}

/// Runs `f`, turning a panic inside the CEL crate into an error: no expression or input may
/// take the process down.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| "the expression could not be evaluated (internal error)".to_owned())
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a map",
    }
}

/// `map` with every null member removed, at any depth (null elements of lists too).
pub fn without_nulls(mut map: Map<String, Json>) -> Map<String, Json> {
    drop_nulls(&mut map);
    map
}

/// Removes every null member of `map` where it is, at any depth.
fn drop_nulls(map: &mut Map<String, Json>) {
    map.retain(|_, v| !v.is_null());
    map.values_mut().for_each(prune);
}

fn prune(v: &mut Json) {
    match v {
        Json::Object(m) => drop_nulls(m),
        Json::Array(a) => {
            a.retain(|v| !v.is_null());
            a.iter_mut().for_each(prune);
        }
        _ => {}
    }
}

/// The static bounds, checked on the expanded expression.
struct Check<'a> {
    source: &'a str,
    program: &'a Program,
    nodes: usize,
    /// What the expression reads of its variables.
    needs: Needs,
}

impl Check<'_> {
    /// The 1-based line and column of node `id` in the source.
    fn position(&self, id: u64) -> (u32, u32) {
        let Some((start, _)) = self.program.source_info().offset_for(id) else {
            return (1, 1);
        };
        let before: String = self.source.chars().take(start as usize).collect();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
        )
    }

    /// The entries of a map or struct literal.
    fn entries(
        &mut self,
        entries: &[IdedEntryExpr],
        in_comprehension: bool,
    ) -> Result<(), ExpressionError> {
        entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => {
                self.walk(&m.key, in_comprehension)?;
                self.walk(&m.value, in_comprehension)
            }
            EntryExpr::StructField(f) => self.walk(&f.value, in_comprehension),
        })
    }

    fn walk(&mut self, e: &IdedExpr, in_comprehension: bool) -> Result<(), ExpressionError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(ExpressionError::TooManyNodes(self.nodes));
        }
        match &e.expr {
            Expr::Ident(name) => {
                self.needs.whole(name);
                Ok(())
            }
            Expr::Unspecified | Expr::Literal(_) => Ok(()),
            Expr::Call(call) => {
                let operator = !call
                    .func_name
                    .starts_with(|c: char| c.is_ascii_alphabetic());
                if !operator && !FUNCTIONS.contains(&call.func_name.as_str()) {
                    let (line, column) = self.position(e.id);
                    return Err(ExpressionError::Function {
                        line,
                        column,
                        name: call.func_name.clone(),
                    });
                }
                if let Some(target) = &call.target {
                    self.walk(target, in_comprehension)?;
                }
                call.args
                    .iter()
                    .try_for_each(|a| self.walk(a, in_comprehension))
            }
            Expr::Comprehension(c) => {
                if in_comprehension {
                    let (line, column) = self.position(e.id);
                    return Err(ExpressionError::Nested { line, column });
                }
                // The range is evaluated once, before the loop: chaining is linear.
                self.walk(&c.iter_range, false)?;
                self.walk(&c.accu_init, false)?;
                for part in [&c.loop_cond, &c.loop_step, &c.result] {
                    self.walk(part, true)?;
                }
                Ok(())
            }
            Expr::List(l) => l
                .elements
                .iter()
                .try_for_each(|x| self.walk(x, in_comprehension)),
            Expr::Map(m) => self.entries(&m.entries, in_comprehension),
            Expr::Struct(s) => self.entries(&s.entries, in_comprehension),
            Expr::Select(s) => match &s.operand.expr {
                Expr::Ident(name) => {
                    self.nodes += 1;
                    self.needs.member(name, &s.field);
                    Ok(())
                }
                _ => self.walk(&s.operand, in_comprehension),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(source: &str, user: Json) -> Result<Outcome, EvalError> {
        Expression::compile(source)
            .unwrap()
            .evaluate(&[("user", user)])
    }

    fn attributes(o: Outcome) -> Json {
        match o {
            Outcome::Attributes(m) => Json::Object(m),
            Outcome::Skip => panic!("skipped"),
        }
    }

    #[test]
    fn only_the_members_an_expression_reads_are_converted() {
        let e = Expression::compile(
            r#"{"a": user.userName, "b": has(user.title), "c": existing.name.givenName}"#,
        )
        .unwrap();
        let set = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(e.needs().of("user"), set(&["title", "userName"]).as_ref());
        assert_eq!(e.needs().of("existing"), set(&["name"]).as_ref());
        assert_eq!(e.needs().of("provider"), set(&[]).as_ref());
        for whole in [
            r#"{"n": size(user)}"#,
            r#"{"n": user["userName"]}"#,
            r#"{"u": user}"#,
        ] {
            let e = Expression::compile(whole).unwrap();
            assert_eq!(e.needs().of("user"), None, "{whole}");
        }
        // What is read reads as it would from the whole object.
        let user = json!({"userName": "u", "emails": [{"value": "x"}], "n": {"a": 1}});
        let out = run(
            r#"{"a": user.emails[0].value, "b": has(user.title), "c": user.n.a}"#,
            user,
        );
        assert_eq!(
            attributes(out.unwrap()),
            json!({"a": "x", "b": false, "c": 1})
        );
    }

    #[test]
    fn a_mapping_builds_attributes_from_the_user() {
        let user = json!({
            "userName": "Alice@Example.com",
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [{"value": "a@x.example", "primary": false},
                       {"value": "alice@example.com", "primary": true}]
        });
        let out = run(
            r#"{
                "userName": user.userName.lowerAscii(),
                "displayName": user.name.givenName + " " + user.name.familyName,
                "title": has(user.title) ? user.title : "none",
                "emails": user.emails.filter(e, e.primary).map(e, {"value": e.value}),
                "domain": user.userName.split("@")[1]
            }"#,
            user,
        )
        .unwrap();
        assert_eq!(
            attributes(out),
            json!({
                "userName": "alice@example.com",
                "displayName": "Alice Smith",
                "title": "none",
                "emails": [{"value": "alice@example.com"}],
                "domain": "Example.com"
            })
        );
    }

    #[test]
    fn skip_skips_and_other_results_are_refused() {
        let contractor = json!({"userName": "c", "userType": "Contractor"});
        let source = r#"has(user.userType) && user.userType == "Contractor" ? skip : {}"#;
        assert_eq!(run(source, contractor).unwrap(), Outcome::Skip);
        let employee = json!({"userName": "e"});
        assert_eq!(attributes(run(source, employee).unwrap()), json!({}));
        let e = run(r#""text""#, json!({})).unwrap_err();
        assert_eq!(e, EvalError::NotAMap("a string".into()));
        let e = run("user.name.givenName", json!({"userName": "x"})).unwrap_err();
        assert!(
            matches!(e, EvalError::Failed(ref m) if m.contains("name")),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors_point_at_the_place() {
        let e = Expression::compile("{\n  \"a\": user.name +\n}").unwrap_err();
        let (line, _) = e.position().unwrap();
        assert!(matches!(e, ExpressionError::Syntax { .. }), "{e:?}");
        assert_eq!(line, 3, "{e}");
        assert_eq!(
            Expression::compile("  ").unwrap_err(),
            ExpressionError::Empty
        );
    }

    #[test]
    fn what_could_run_away_is_refused_before_it_runs() {
        let e = Expression::compile(r#"{"a": user.userName.replace("a", "aaaa")}"#).unwrap_err();
        assert!(
            matches!(e, ExpressionError::Function { ref name, line: 1, column: 28 } if name == "replace"),
            "{e:?}"
        );
        let nested = "{\"x\": user.emails.map(a,\n user.emails.map(b, b.value))}";
        let e = Expression::compile(nested).unwrap_err();
        assert!(
            matches!(e, ExpressionError::Nested { line: 2, .. }),
            "{e:?}"
        );
        // Chained comprehensions stay linear and are accepted.
        Expression::compile("{\"x\": user.emails.filter(e, e.primary).map(e, e.value)}").unwrap();
        let long = format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_SOURCE));
        assert!(matches!(
            Expression::compile(&long),
            Err(ExpressionError::TooLong(_))
        ));
        let wide = format!("{{\"a\": [{}]}}", vec!["1"; MAX_NODES].join(","));
        assert!(matches!(
            Expression::compile(&wide),
            Err(ExpressionError::TooManyNodes(_))
        ));
        let e = Expression::compile("{\"a\": math.greatest(1, 2)}").unwrap_err();
        assert!(matches!(e, ExpressionError::Function { .. }), "{e:?}");
    }

    #[test]
    fn the_output_is_bounded_and_nulls_are_kept_for_the_merge() {
        let big = json!({"userName": "y".repeat(MAX_OUTPUT)});
        let e = run(r#"{"a": user.userName, "b": user.userName}"#, big).unwrap_err();
        assert!(matches!(e, EvalError::TooLarge(_)), "{e:?}");
        let out = run(
            r#"{"a": null, "b": {"c": null, "d": 1}, "e": [null, 2]}"#,
            json!({}),
        )
        .unwrap();
        let out = attributes(out);
        assert_eq!(
            out,
            json!({"a": null, "b": {"c": null, "d": 1}, "e": [null, 2]})
        );
        let Json::Object(m) = out else { unreachable!() };
        assert_eq!(
            Json::Object(without_nulls(m)),
            json!({"b": {"d": 1}, "e": [2]})
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of CEL, so that random sources are often close to valid ones.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "user",
            ".",
            "name",
            "givenName",
            "emails",
            "userName",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ":",
            ",",
            "\"a\"",
            "1",
            "-1",
            "9223372036854775807",
            "+",
            "-",
            "*",
            "/",
            "%",
            "==",
            "!",
            "&&",
            "||",
            "?",
            "has",
            "size",
            "map",
            "filter",
            "all",
            "exists",
            "e",
            "x",
            "lowerAscii()",
            "split(\"@\")",
            "[0]",
            "null",
            "true",
            "skip",
            " ",
            "\n",
            "'",
            "\\",
            "in",
            "matches(\"(a+)+$\")",
            "int",
            "string",
            "1.5e308",
            "b\"x\"",
        ])
    }

    fn json_value() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
            ".{0,12}".prop_map(Json::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any source compiles or is refused, and any accepted expression evaluates or fails,
        /// on any input: never a panic.
        #[test]
        fn no_expression_and_no_input_panics(
            pieces in prop::collection::vec(piece(), 0..24),
            user in json_value(),
        ) {
            let source: String = pieces.concat();
            if let Ok(e) = Expression::compile(&source) {
                let _ = e.evaluate(&[("user", user)]);
            }
        }

        /// Known-good expressions on any input: a map, skip, or an error; never a panic.
        #[test]
        fn mappings_on_arbitrary_users_never_panic(user in json_value()) {
            for source in [
                r#"{"d": user.name.givenName + " " + user.name.familyName}"#,
                r#"{"e": user.emails.filter(e, e.primary).map(e, e.value)}"#,
                r#"has(user.userType) && user.userType == "Contractor" ? skip : {"u": user.userName.lowerAscii()}"#,
                r#"{"n": size(user), "s": string(user)}"#,
            ] {
                let _ = Expression::compile(source).unwrap().evaluate(&[("user", user.clone())]);
            }
        }
    }
}
