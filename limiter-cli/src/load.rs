//! Loading a configuration as the service does (files merged in order over the defaults, then
//! the environment), with each error placed at its file, line and column.

use std::path::PathBuf;

use limiter_core::policy::{Config, PolicySet};
use toml::de::{DeTable, DeValue};

use crate::CliError;

/// The prefix of the environment variables the configuration reads.
const ENV_PREFIX: &str = "LIMITER_";

/// One configuration file, as read.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
    pub(crate) json: bool,
}

/// A loaded, compiled configuration and where it came from.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) policies: PolicySet,
    pub(crate) sources: Vec<Source>,
    /// The `LIMITER_*` variables applied (names and values), sorted.
    pub(crate) env: Vec<(String, String)>,
}

impl Loaded {
    /// Where the setting at `path` (`plans.free.burst`, `bypass.ips[2]`) is set:
    /// `file:line:column` of the last file that sets it, or `environment` if a variable does.
    pub(crate) fn locate(&self, path: &str) -> Option<String> {
        locate(&self.sources, &self.env, path)
    }
}

/// Reads `paths` in order, then the environment unless `no_env`, and compiles the result.
pub(crate) fn load(paths: &[PathBuf], no_env: bool) -> Result<Loaded, CliError> {
    let env: Vec<(String, String)> = if no_env {
        Vec::new()
    } else {
        let mut vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        vars
    };
    load_with(paths, env)
}

/// [`load`] with the given environment.
pub(crate) fn load_with(paths: &[PathBuf], env: Vec<(String, String)>) -> Result<Loaded, CliError> {
    let mut config = Config::default();
    let mut sources = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
            path: path.clone(),
            source,
        })?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let merged = if json {
            config.merge_json_str(&text)
        } else {
            config.merge_toml_str(&text)
        };
        let source = Source {
            path: path.clone(),
            text,
            json,
        };
        if let Err(error) = merged {
            let at = place(&source, &error);
            return Err(CliError::Config { at, source: error });
        }
        sources.push(source);
    }
    if let Err(error) = config.apply_env(env.iter().cloned()) {
        return Err(CliError::Config {
            at: Some("environment".into()),
            source: error,
        });
    }
    let policies = match PolicySet::from_config(&config) {
        Ok(policies) => policies,
        Err(error) => {
            let at = match &error {
                limiter_core::Error::InvalidConfig { path, .. } => locate(&sources, &env, path),
                _ => None,
            };
            return Err(CliError::Config { at, source: error });
        }
    };
    Ok(Loaded {
        config,
        policies,
        sources,
        env,
    })
}

/// Where in `source` the error of merging it lies: a syntax error's line and column, or the
/// span of the setting its path names.
fn place(source: &Source, error: &limiter_core::Error) -> Option<String> {
    let file = source.path.display();
    let limiter_core::Error::InvalidConfig { path, .. } = error else {
        return Some(file.to_string());
    };
    // A syntax error's "path" is its position, `line L, column C`.
    if let Some((line, column)) = path
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(", column "))
    {
        return Some(format!("{file}:{line}:{column}"));
    }
    if source.json {
        return Some(file.to_string());
    }
    Some(span_of(&source.text, path).map_or_else(
        || file.to_string(),
        |(line, column)| format!("{file}:{line}:{column}"),
    ))
}

/// Where `path` is set: by an environment variable, else in the last TOML file that sets it.
fn locate(sources: &[Source], env: &[(String, String)], path: &str) -> Option<String> {
    let var = env_var(path);
    if env.iter().any(|(name, _)| *name == var) {
        return Some(format!("environment ({var})"));
    }
    sources.iter().rev().find_map(|source| {
        if source.json {
            return None;
        }
        let (line, column) = span_of(&source.text, path)?;
        Some(format!("{}:{line}:{column}", source.path.display()))
    })
}

/// The variable that sets `path`: `plans.free.burst` is `LIMITER_PLANS__FREE__BURST`.
fn env_var(path: &str) -> String {
    let path = path.split('[').next().unwrap_or(path);
    let parts: Vec<String> = path.split('.').map(str::to_ascii_uppercase).collect();
    format!("{ENV_PREFIX}{}", parts.join("__"))
}

/// The 1-based line and column where `text` sets the dotted `path` (`bypass.ips[2]`): its
/// value, or failing that the nearest enclosing setting the file has.
pub(crate) fn span_of(text: &str, path: &str) -> Option<(usize, usize)> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut rest = path;
    let mut found: Option<std::ops::Range<usize>> = None;
    while !rest.is_empty() {
        // Keys may hold dots (a scope named `v1.export`): the longest key that prefixes the
        // rest of the path at a segment boundary wins.
        let entry = table
            .iter()
            .filter(|(k, _)| {
                let key: &str = k.get_ref();
                rest.strip_prefix(key)
                    .is_some_and(|r| r.is_empty() || r.starts_with(['.', '[']))
            })
            .max_by_key(|(k, _)| k.get_ref().len());
        let Some((key, value)) = entry else { break };
        rest = &rest[key.get_ref().len()..];
        let mut value = value;
        found = Some(value.span());
        // Indices into lists: `[2]`.
        while let Some(index) = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .and_then(|(i, r)| Some((i.parse::<usize>().ok()?, r)))
        {
            let DeValue::Array(items) = value.get_ref() else {
                break;
            };
            let Some(item) = items.get(index.0) else {
                break;
            };
            value = item;
            found = Some(value.span());
            rest = index.1;
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
        match value.get_ref() {
            DeValue::Table(inner) if !rest.is_empty() => table = inner,
            _ => break,
        }
    }
    found.map(|span| line_column(text, span.start))
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_found_at_its_value() {
        let text = "namespace = \"x\"\n\n[plans.free]\nburst = \"10/fortnight\"\n\n[bypass]\nips = [\"10.0.0.0/8\", \"nope\"]\n";
        assert_eq!(span_of(text, "plans.free.burst"), Some((4, 9)));
        assert_eq!(span_of(text, "bypass.ips[1]"), Some((7, 22)));
        assert_eq!(span_of(text, "namespace"), Some((1, 13)));
        // Not set here: the nearest enclosing setting, or nothing.
        assert_eq!(span_of(text, "plans.free.daily").map(|p| p.0), Some(3));
        assert_eq!(span_of(text, "time_zone"), None);
    }

    #[test]
    fn dotted_keys_and_dotted_names_are_followed() {
        let text = "scopes.\"v1.export\" = \"5/hour\"\nplans.free.burst = \"1/day\"\n";
        assert_eq!(span_of(text, "scopes.v1.export"), Some((1, 22)));
        assert_eq!(span_of(text, "plans.free.burst"), Some((2, 20)));
    }

    #[test]
    fn a_setting_maps_to_its_variable() {
        assert_eq!(env_var("plans.free.burst"), "LIMITER_PLANS__FREE__BURST");
        assert_eq!(env_var("bypass.ips[2]"), "LIMITER_BYPASS__IPS");
    }
}
