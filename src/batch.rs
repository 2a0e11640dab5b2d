//! Many crops in one command: input paths and glob patterns, and the output template that names
//! each crop's output.
//!
//! Placeholders of an output template:
//!
//! | placeholder | value | `data/crop7.zarr/labels` |
//! | --- | --- | --- |
//! | `{name}` | the crop: the nearest enclosing `*.zarr` directory (the input itself included), without `.zarr`; else the input's parent directory | `crop7` |
//! | `{stem}` | the input's last path component, without `.zarr` | `labels` |
//! | `{path}` | the input relative to the common ancestor of all inputs, `/` replaced by `_`, `.zarr` dropped (unique among the inputs) | `crop7_labels` (with `data/crop8.zarr/labels` beside it) |
//! | `{index}` | position among the inputs after glob expansion, from 0 | `0` |
//!
//! ```
//! use std::path::PathBuf;
//! use annomask::batch::OutputTemplate;
//! let inputs = [PathBuf::from("d/a.zarr/labels"), PathBuf::from("d/b.zarr/labels")];
//! let outs = OutputTemplate::new("out/{name}_mask.zarr").render_all(&inputs)?;
//! assert_eq!(outs, [PathBuf::from("out/a_mask.zarr"), PathBuf::from("out/b_mask.zarr")]);
//! // without a placeholder the two crops would overwrite each other: an error
//! assert!(OutputTemplate::new("out/mask.zarr").render_all(&inputs).is_err());
//! # Ok::<(), annomask::Error>(())
//! ```

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, StorageError};
use crate::remote::{StoreOptions, StoreUrl};

/// Extensions dropped from path components in placeholders.
const EXTENSIONS: [&str; 2] = [".zarr", ".n5"];

fn strip_extension(s: &str) -> &str {
    EXTENSIONS
        .iter()
        .find_map(|e| s.strip_suffix(e).filter(|r| !r.is_empty()))
        .unwrap_or(s)
}

fn components(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// Whether an argument is a glob pattern (holds `*`, `?` or `[`).
pub fn is_pattern(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// The label arrays named by `args`: plain paths as they are, glob patterns expanded (sorted);
/// duplicates are dropped, first occurrence kept. A pattern that matches nothing is an error.
///
/// An object-store URL is kept as it is (its text in a `PathBuf`), a pattern in one is matched
/// against the store's keys ([`crate::remote::expand`]), opened with `options`.
pub fn expand_inputs(args: &[String], options: StoreOptions) -> Result<Vec<PathBuf>, Error> {
    let mut out: Vec<PathBuf> = Vec::new();
    for arg in args {
        let url = StoreUrl::parse(arg)?;
        let local = crate::store::local_path(arg);
        let arg = &*local.to_string_lossy();
        let matched: Vec<PathBuf> = if let Some(url) = url {
            match is_pattern(url.key()) {
                true => crate::remote::expand(&url, options)?
                    .iter()
                    .map(|u| PathBuf::from(u.as_str()))
                    .collect(),
                false => vec![PathBuf::from(url.as_str())],
            }
        } else if is_pattern(arg) {
            let paths = glob::glob(arg).map_err(|e| StorageError::NotFound {
                path: format!("{arg} (invalid glob pattern: {e})"),
            })?;
            let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            found.sort();
            if found.is_empty() {
                return Err(StorageError::NotFound {
                    path: format!("{arg} (the pattern matches nothing)"),
                }
                .into());
            }
            found
        } else {
            vec![PathBuf::from(arg)]
        };
        for p in matched {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// An output path with placeholders (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputTemplate(String);

impl OutputTemplate {
    /// A template from its text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Whether the template names its crop (holds a placeholder).
    pub fn has_placeholders(&self) -> bool {
        ["{name}", "{stem}", "{path}", "{index}"]
            .iter()
            .any(|p| self.0.contains(p))
    }

    /// The output path of each input; an error if a placeholder is unknown or two inputs get the
    /// same output.
    pub fn render_all(&self, inputs: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
        let absolute: Vec<PathBuf> = inputs.iter().map(|p| absolute(p)).collect();
        let common = common_ancestor(&absolute);
        let outs: Vec<PathBuf> = inputs
            .iter()
            .zip(&absolute)
            .enumerate()
            .map(|(index, (input, abs))| self.render(input, abs, &common, index))
            .collect::<Result<_, _>>()?;
        for (i, a) in outs.iter().enumerate() {
            if let Some(j) = outs[..i].iter().position(|b| b == a) {
                return Err(StorageError::OutputCollision {
                    path: a.display().to_string(),
                    first: inputs[j].display().to_string(),
                    second: inputs[i].display().to_string(),
                }
                .into());
            }
        }
        Ok(outs)
    }

    fn render(
        &self,
        input: &Path,
        abs: &Path,
        common: &Path,
        index: usize,
    ) -> Result<PathBuf, Error> {
        let parts = components(abs);
        let stem = parts
            .last()
            .map_or_else(|| "mask".to_string(), |s| strip_extension(s).to_string());
        let name = parts
            .iter()
            .rev()
            .find(|c| EXTENSIONS.iter().any(|e| c.ends_with(e)))
            .map(|c| strip_extension(c).to_string())
            .or_else(|| parts.iter().rev().nth(1).cloned())
            .unwrap_or_else(|| stem.clone());
        let rel = abs.strip_prefix(common).unwrap_or(abs);
        let rel: Vec<String> = components(rel)
            .iter()
            .map(|c| strip_extension(c).to_string())
            .collect();
        let path = if rel.is_empty() {
            stem.clone()
        } else {
            rel.join("_")
        };
        let mut out = String::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map(|c| open + c);
            let Some(close) = close else {
                out.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let value = match &rest[open + 1..close] {
                "name" => name.clone(),
                "stem" => stem.clone(),
                "path" => path.clone(),
                "index" => index.to_string(),
                other => {
                    return Err(StorageError::OutputSpec {
                        path: self.0.clone(),
                        message: format!(
                            "unknown placeholder {{{other}}} for {} (use {{name}}, {{stem}}, {{path}} or {{index}})",
                            input.display()
                        ),
                    }
                    .into());
                }
            };
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(PathBuf::from(out))
    }
}

/// The path made absolute; an object-store URL as it is (its components name the crop).
fn absolute(p: &Path) -> PathBuf {
    if crate::remote::is_url(&p.to_string_lossy()) {
        return p.to_path_buf();
    }
    p.canonicalize()
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// The deepest directory containing every path (a path's own last component excluded).
fn common_ancestor(paths: &[PathBuf]) -> PathBuf {
    let Some(first) = paths.first() else {
        return PathBuf::new();
    };
    let mut common: PathBuf = first.parent().map(Path::to_path_buf).unwrap_or_default();
    for p in &paths[1..] {
        while !p.starts_with(&common) || p == &common {
            match common.parent() {
                Some(up) => common = up.to_path_buf(),
                None => return PathBuf::new(),
            }
        }
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, inputs: &[&str]) -> Result<Vec<String>, Error> {
        let inputs: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
        Ok(OutputTemplate::new(template)
            .render_all(&inputs)?
            .iter()
            .map(|p| p.display().to_string())
            .collect())
    }

    #[test]
    fn placeholders() {
        let inputs = ["/d/a.zarr/labels", "/d/sub/b.zarr/labels"];
        assert_eq!(
            render("o/{name}-{stem}-{index}.zarr", &inputs).unwrap(),
            ["o/a-labels-0.zarr", "o/b-labels-1.zarr"]
        );
        assert_eq!(
            render("o/{path}.zarr", &inputs).unwrap(),
            ["o/a_labels.zarr", "o/sub_b_labels.zarr"]
        );
        // CellMap layout: one dataset, many crops; {name} collides, {path} does not.
        let crops = [
            "/x/jrc.zarr/recon-1/labels/groundtruth/crop1/all/s0",
            "/x/jrc.zarr/recon-1/labels/groundtruth/crop2/all/s0",
        ];
        let err = render("o/{name}.zarr", &crops).unwrap_err().to_string();
        assert!(
            err.contains("o/jrc.zarr") && err.contains("crop1") && err.contains("{path}"),
            "{err}"
        );
        assert_eq!(
            render("o/{path}.zarr", &crops).unwrap(),
            ["o/crop1_all_s0.zarr", "o/crop2_all_s0.zarr"]
        );
        // Without a .zarr directory, {name} is the parent directory.
        assert_eq!(render("{name}", &["/c/crop9/labels"]).unwrap(), ["crop9"]);
        assert_eq!(render("{path}", &["/c/crop9/labels"]).unwrap(), ["labels"]);
        let err = render("o/{crop}.zarr", &["/a"]).unwrap_err().to_string();
        assert!(err.contains("unknown placeholder {crop}"), "{err}");
        assert_eq!(render("o/{name", &["/a/b"]).unwrap(), ["o/{name"]);
    }

    #[test]
    fn globs_expand_sorted_and_must_match() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.zarr", "a.zarr", "c.txt"] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
        }
        let pattern = format!("{}/*.zarr", dir.path().display());
        let plain = dir.path().join("a.zarr").display().to_string();
        let got =
            expand_inputs(&[plain.clone(), pattern.clone()], StoreOptions::default()).unwrap();
        assert_eq!(
            got,
            [dir.path().join("a.zarr"), dir.path().join("b.zarr")],
            "sorted, duplicates dropped"
        );
        let none = format!("{}/*.n5", dir.path().display());
        let err = expand_inputs(std::slice::from_ref(&none), StoreOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&none) && err.contains("matches nothing"),
            "{err}"
        );
        assert!(is_pattern("a/*/b") && !is_pattern("a/b"));
    }
}
