//! Where settings come from, merged with figment so every value keeps the name of its source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::Problem;
use super::spec::{self, SETTINGS};

/// The inputs of one configuration load. Tests build these by hand; programs use
/// [`Sources::from_process`].
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A TOML file given with `--config`; it must exist when given.
    pub config_file: Option<PathBuf>,
    /// A `.env` file; `from_process` uses `./.env` when it exists.
    pub dotenv_file: Option<PathBuf>,
    /// The environment's variables, which override both files.
    pub env: Vec<(String, String)>,
}

/// A setting's raw text and the source it came from, for error messages.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub value: String,
    pub origin: String,
}

pub(super) struct Merged {
    pub entries: BTreeMap<&'static str, Entry>,
    pub problems: Vec<Problem>,
}

impl Sources {
    /// What this process was given: `config_file` (from `--config`), `./.env` when present,
    /// and its environment.
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        let dotenv = PathBuf::from(".env");
        Self { config_file, dotenv_file: dotenv.is_file().then_some(dotenv), env: std::env::vars().collect() }
    }

    pub(super) fn merge(&self) -> Merged {
        let mut problems = Vec::new();
        let defaults = SETTINGS.iter().filter_map(|s| s.default.map(|d| (s.name.to_owned(), d.to_owned())));
        let mut figment = Figment::new().merge(Layer::new("built-in default", defaults));
        if let Some(path) = &self.config_file {
            figment = figment.merge(toml_layer(path, &mut problems));
        }
        if let Some(path) = &self.dotenv_file {
            figment = figment.merge(dotenv_layer(path, &mut problems));
        }
        let env = self.env.iter().filter(|(name, _)| spec::find(name).is_some()).cloned();
        figment = figment.merge(Layer::new("environment", env));

        let mut entries = BTreeMap::new();
        for setting in SETTINGS.iter() {
            let key = setting.name.to_ascii_lowercase();
            let Ok(value) = figment.find_value(&key) else { continue };
            let origin =
                figment.find_metadata(&key).map_or_else(|| "unknown source".to_owned(), |m| m.name.to_string());
            if let Some(text) = value.as_str() {
                entries.insert(setting.name, Entry { value: text.to_owned(), origin });
            }
        }
        Merged { entries, problems }
    }
}

/// One source of settings, named for error messages.
struct Layer {
    name: String,
    values: Dict,
}

impl Layer {
    fn new(name: impl Into<String>, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let values = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), Value::from(v))).collect();
        Self { name: name.into(), values }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

fn toml_layer(path: &Path, problems: &mut Vec<Problem>) -> Layer {
    let name = format!("config file {}", path.display());
    let mut pairs = Vec::new();
    let mut problem = |why: String| problems.push(Problem { name: name.clone(), why });
    match std::fs::read_to_string(path) {
        Err(e) => problem(format!("cannot be read: {e}")),
        Ok(text) => match text.parse::<toml::Table>() {
            Err(e) => problem(format!("is not valid TOML: {}", e.message())),
            Ok(table) => {
                for (key, value) in table {
                    let Some(setting) = spec::find(&key) else {
                        problem(format!("unknown setting `{key}`"));
                        continue;
                    };
                    match toml_scalar(&value) {
                        Some(text) => pairs.push((setting.name.to_owned(), text)),
                        None => problem(format!("`{key}` must be a string, number, boolean or list of strings")),
                    }
                }
            }
        },
    }
    Layer::new(name, pairs)
}

fn toml_scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => {
            let texts: Option<Vec<_>> = items.iter().map(|item| item.as_str().map(str::to_owned)).collect();
            texts.map(|t| t.join(","))
        }
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

/// Unknown names in `.env` are ignored: such files are shared with other programs.
fn dotenv_layer(path: &Path, problems: &mut Vec<Problem>) -> Layer {
    let name = format!(".env file {}", path.display());
    let mut pairs = Vec::new();
    match dotenvy::from_path_iter(path) {
        Err(e) => problems.push(Problem { name: name.clone(), why: format!("cannot be read: {e}") }),
        Ok(lines) => {
            for line in lines {
                match line {
                    Ok((key, value)) if spec::find(&key).is_some() => pairs.push((key, value)),
                    Ok(_) => {}
                    Err(e) => problems.push(Problem { name: name.clone(), why: dotenv_error(path, &e) }),
                }
            }
        }
    }
    Layer::new(name, pairs)
}

/// dotenvy's own message quotes the whole line, which may hold a secret; name the line number
/// instead.
fn dotenv_error(path: &Path, error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(line, index) => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let number = text.lines().position(|l| l.trim_end() == line.trim_end()).map_or(0, |n| n + 1);
            format!("line {number} cannot be parsed near character {index}; check its `NAME=value` form and quotes")
        }
        other => format!("cannot be parsed: {other}"),
    }
}
