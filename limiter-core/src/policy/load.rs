//! Loading configuration from TOML, JSON and environment variables (the `Config::from_*`,
//! `merge_*` and `apply_env*` methods), with errors that name the path of the offending
//! setting.
//!
//! Every source is first parsed into a [`Node`] tree (syntax errors carry their line and
//! column), then deserialized into a [`ConfigPatch`] by a deserializer that records where it is,
//! so that a type error, an unknown field or an invalid value deep in the file reports its
//! dotted path (`plans.free.burst`, `bypass.ips[2]`) or, for the environment, its variable.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::config::Config;
use super::patch::{ConfigPatch, SETTINGS};
use crate::Error;

/// The prefix of the environment variables that [`Config::apply_env`] reads.
const ENV_PREFIX: &str = "LIMITER_";

/// Whether a variable's name after the prefix aims at a setting: a path (`PLANS__FREE__BURST`),
/// a top-level setting, or a near miss of one (`TIMEZONE`, `PLANS_FREE_BURST`), which is then
/// reported rather than ignored. Anything else (`LOG_LEVEL`, `REDIS_URL`, set by another
/// component that shares the prefix) is not the configuration's, and is skipped.
fn aims_at_a_setting(rest: &str) -> bool {
    let name = rest.to_ascii_lowercase();
    name.contains("__")
        || SETTINGS.iter().any(|setting| {
            name.strip_prefix(setting)
                .is_some_and(|tail| tail.is_empty() || tail.starts_with('_'))
                || edit_distance(&name, setting) <= 2
        })
}

/// The Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

impl Config {
    /// Loads a TOML configuration over the defaults: what the file names overrides, the rest
    /// stays. Checks syntax, types and values (each error names its path);
    /// [`PolicySet::from_config`](super::PolicySet::from_config) then checks the whole.
    ///
    /// ```
    /// use limiter_core::policy::Config;
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [plans.professional]
    ///     sustained = "3000/hour"
    /// "#)?;
    /// assert_eq!(config.plans["professional"].sustained.to_string(), "3000/hour");
    /// assert_eq!(config.plans["professional"].burst.to_string(), "100/minute");
    /// # Ok::<(), limiter_core::Error>(())
    /// ```
    pub fn from_toml_str(input: &str) -> Result<Config, Error> {
        let mut config = Config::default();
        config.merge_toml_str(input)?;
        Ok(config)
    }

    /// Loads a JSON configuration over the defaults, like [`Config::from_toml_str`].
    pub fn from_json_str(input: &str) -> Result<Config, Error> {
        let mut config = Config::default();
        config.merge_json_str(input)?;
        Ok(config)
    }

    /// Merges a TOML document over this configuration (for layered files). On error, nothing
    /// changes.
    pub fn merge_toml_str(&mut self, input: &str) -> Result<(), Error> {
        let tree = parse_toml(input)?;
        merge_tree(self, &tree)
    }

    /// Merges a JSON document over this configuration. On error, nothing changes.
    pub fn merge_json_str(&mut self, input: &str) -> Result<(), Error> {
        let tree = parse_json(input)?;
        merge_tree(self, &tree)
    }

    /// Applies `LIMITER_*` environment variables over this configuration; see the
    /// [module docs](super) for the scheme. Pass `std::env::vars()`: the crate never reads the
    /// environment itself. On error, nothing changes.
    ///
    /// ```
    /// use limiter_core::policy::Config;
    ///
    /// let mut config = Config::default();
    /// config.apply_env([
    ///     ("LIMITER_PLANS__PROFESSIONAL__SUSTAINED".to_string(), "3000/hour".to_string()),
    ///     ("LIMITER_BYPASS__IPS".to_string(), "10.0.0.0/8,192.168.1.1".to_string()),
    ///     ("HOME".to_string(), "/root".to_string()), // no prefix: ignored
    /// ])?;
    /// assert_eq!(config.plans["professional"].sustained.to_string(), "3000/hour");
    /// assert_eq!(config.bypass.ips.len(), 2);
    /// # Ok::<(), limiter_core::Error>(())
    /// ```
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(
        &mut self,
        vars: I,
    ) -> Result<(), Error> {
        self.apply_env_with_prefix(ENV_PREFIX, vars)
    }

    /// [`Config::apply_env`] with another prefix than `LIMITER_` (such as `MYAPP_LIMITS_`).
    pub fn apply_env_with_prefix<I: IntoIterator<Item = (String, String)>>(
        &mut self,
        prefix: &str,
        vars: I,
    ) -> Result<(), Error> {
        merge_env(self, prefix, vars)
    }

    /// Renders the configuration as a complete TOML file.
    pub fn to_toml_string(&self) -> Result<String, Error> {
        toml::to_string(self).map_err(|e| Error::config("config", e.to_string()))
    }
}

/// A parsed document, whatever its format.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A TOML date or time: no setting takes one, so it is kept apart to be reported as such.
    Datetime(String),
    List(Vec<Node>),
    Table(Vec<(String, Node)>),
}

fn parse_toml(input: &str) -> Result<Node, Error> {
    let table: toml::Table = input.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map_or_else(|| "TOML input".to_owned(), |s| line_column(input, s.start));
        Error::config(at, e.message().trim_end().to_owned())
    })?;
    Ok(from_toml_table(table))
}

fn from_toml_table(table: toml::Table) -> Node {
    Node::Table(table.into_iter().map(|(k, v)| (k, from_toml(v))).collect())
}

fn from_toml(value: toml::Value) -> Node {
    match value {
        toml::Value::String(s) => Node::Str(s),
        toml::Value::Integer(i) => Node::Int(i),
        toml::Value::Float(f) => Node::Float(f),
        toml::Value::Boolean(b) => Node::Bool(b),
        toml::Value::Datetime(d) => Node::Datetime(d.to_string()),
        toml::Value::Array(a) => Node::List(a.into_iter().map(from_toml).collect()),
        toml::Value::Table(t) => from_toml_table(t),
    }
}

/// `line L, column C` (1-based) of byte `offset` of `input`.
fn line_column(input: &str, offset: usize) -> String {
    let before = input.get(..offset).unwrap_or(input);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

fn parse_json(input: &str) -> Result<Node, Error> {
    let value: serde_json::Value = serde_json::from_str(input).map_err(|e| {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        Error::config(format!("line {}, column {}", e.line(), e.column()), message)
    })?;
    Ok(from_json(value))
}

fn from_json(value: serde_json::Value) -> Node {
    use serde_json::Value;
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Node::Int(i),
            None => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Node::Str(s),
        Value::Array(a) => Node::List(a.into_iter().map(from_json).collect()),
        Value::Object(o) => Node::Table(o.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

/// Merges the document `tree` over `config`; on error `config` is unchanged.
fn merge_tree(config: &mut Config, tree: &Node) -> Result<(), Error> {
    let patch = ConfigPatch::deserialize(NodeDe {
        node: tree,
        env: false,
    })
    .map_err(|e| Error::config(e.path(), e.message))?;
    let mut next = config.clone();
    patch.apply(&mut next)?;
    *config = next;
    Ok(())
}

fn merge_env<I: IntoIterator<Item = (String, String)>>(
    config: &mut Config,
    prefix: &str,
    vars: I,
) -> Result<(), Error> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| match name.strip_prefix(prefix) {
            Some(rest) => aims_at_a_setting(rest),
            None => false,
        })
        .collect();
    if vars.is_empty() {
        return Ok(());
    }
    // Sorted, so that which of several bad variables is reported does not depend on the
    // order of the environment.
    vars.sort();
    let mut root = Node::Table(Vec::new());
    // The dotted path each variable sets, to name the variable in errors.
    let mut sources: Vec<(String, String)> = Vec::with_capacity(vars.len());
    for (name, value) in vars {
        let rest = name.get(prefix.len()..).unwrap_or_default();
        let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if segments.iter().any(String::is_empty) {
            return Err(Error::config(
                name,
                format!(
                    "expected the path of a setting in upper case, its parts separated by \"__\", \
                     such as {prefix}PLANS__FREE__BURST or {prefix}BYPASS__STAFF"
                ),
            ));
        }
        let path = segments.join(".");
        if let Err(existing) = insert(&mut root, &segments, Node::Str(value)) {
            let other = sources
                .iter()
                .find(|(p, _)| p.starts_with(&existing) || existing.starts_with(p.as_str()))
                .map_or_else(|| existing.clone(), |(_, v)| v.clone());
            return Err(Error::config(
                name,
                format!(
                    "conflicts with {other}: one sets {existing} as a whole, the other a part of it"
                ),
            ));
        }
        sources.push((path, name));
    }
    let env_error = |path: String, message: String| {
        let var = sources
            .iter()
            .find(|(p, _)| {
                path == *p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with(['.', '[']))
            })
            .or_else(|| {
                sources.iter().find(|(p, _)| {
                    p.strip_prefix(path.as_str())
                        .is_some_and(|r| r.starts_with('.'))
                })
            });
        match var {
            Some((p, v)) if *p == path => Error::config(v.clone(), message),
            Some((_, v)) => Error::config(format!("{v} ({path})"), message),
            None => Error::config(path, message),
        }
    };
    let patch = ConfigPatch::deserialize(NodeDe {
        node: &root,
        env: true,
    })
    .map_err(|e| env_error(e.path(), e.message))?;
    let mut next = config.clone();
    patch.apply(&mut next).map_err(|e| match e {
        Error::InvalidConfig { path, message } => env_error(path, message),
        e => e,
    })?;
    *config = next;
    Ok(())
}

/// Sets `value` at `path` under `root`; on a conflict (a value where a table is needed, or the
/// reverse), the dotted path of the conflicting part.
fn insert(root: &mut Node, path: &[String], value: Node) -> Result<(), String> {
    let mut node = root;
    for (i, segment) in path.iter().enumerate() {
        let Node::Table(entries) = node else {
            return Err(path[..i].join("."));
        };
        let last = i + 1 == path.len();
        let pos = match entries.iter().position(|(k, _)| k == segment) {
            Some(pos) => pos,
            None => {
                let child = if last {
                    Node::Null
                } else {
                    Node::Table(Vec::new())
                };
                entries.push((segment.clone(), child));
                entries.len() - 1
            }
        };
        let child = &mut entries[pos].1;
        if last {
            if matches!(child, Node::Table(_)) {
                return Err(path.join("."));
            }
            *child = value;
            return Ok(());
        }
        node = child;
    }
    Ok(())
}

/// A deserialization error and where it happened.
#[derive(Debug)]
struct DeError {
    /// Path segments, innermost first (each level adds its own as the error goes up).
    segments: Vec<Segment>,
    message: String,
}

#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

impl DeError {
    fn within(mut self, segment: Segment) -> DeError {
        self.segments.push(segment);
        self
    }

    /// The dotted path, such as `plans.free.burst` or `bypass.ips[2]`.
    fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.segments.iter().rev() {
            match segment {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        if out.is_empty() {
            out.push_str("config");
        }
        out
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            segments: Vec::new(),
            message: msg.to_string(),
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.message)
    }
}

impl std::error::Error for DeError {}

/// Deserializes a [`Node`]. In `env` mode a string also reads as a boolean (`true`, `false`)
/// and as a comma-separated list, since environment variables hold only strings.
#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    env: bool,
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Int(i) => visitor.visit_i64(*i),
            Node::Float(f) => visitor.visit_f64(*f),
            Node::Str(s) => visitor.visit_str(s),
            Node::Datetime(d) => Err(de::Error::invalid_type(
                de::Unexpected::Other(&format!("date-time {d}")),
                &visitor,
            )),
            Node::List(items) => visitor.visit_seq(ListAccess {
                items: items.iter().enumerate(),
                env: self.env,
            }),
            Node::Table(entries) => visitor.visit_map(TableAccess {
                entries: entries.iter(),
                value: None,
                env: self.env,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Str(s) if self.env && s.trim().eq_ignore_ascii_case("true") => {
                visitor.visit_bool(true)
            }
            Node::Str(s) if self.env && s.trim().eq_ignore_ascii_case("false") => {
                visitor.visit_bool(false)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Str(s) if self.env => {
                let items: Vec<Node> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Node::Str(p.to_owned()))
                    .collect();
                visitor.visit_seq(ListAccess {
                    items: items.iter().enumerate(),
                    env: self.env,
                })
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.node {
            Node::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

struct ListAccess<'a, I: Iterator<Item = (usize, &'a Node)>> {
    items: I,
    env: bool,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'de> for ListAccess<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => seed
                .deserialize(NodeDe {
                    node,
                    env: self.env,
                })
                .map(Some)
                .map_err(|e| e.within(Segment::Index(i))),
        }
    }
}

struct TableAccess<'a> {
    entries: std::slice::Iter<'a, (String, Node)>,
    value: Option<(&'a str, &'a Node)>,
    env: bool,
}

impl<'de, 'a> MapAccess<'de> for TableAccess<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        // An unknown field is reported here, at the field's own path.
        let de: de::value::StrDeserializer<'_, DeError> = key.as_str().into_deserializer();
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.within(Segment::Key(key.clone())))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.value.take() else {
            return Err(de::Error::custom("a value was read before its key"));
        };
        seed.deserialize(NodeDe {
            node,
            env: self.env,
        })
        .map_err(|e| e.within(Segment::Key(key.to_owned())))
    }
}
