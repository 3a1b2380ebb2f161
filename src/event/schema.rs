//! The JSON Schemas in `schemas/`, compiled into the binary, with the deployment's vocabulary
//! additions merged in: the documented contract, served as is. Every append is checked here
//! before it reaches the log (an event of schema version 1 also against `version-1.json`'s
//! narrower forms), first by the typed validator (`typed.rs`), which decides; a refusal is
//! then worded by the compiled schema, compiled on first need, so a client reads the
//! schema's own errors. This module must never fetch a schema from the network or the file
//! system at run time: what was compiled in, plus `[vocabulary]`, is what is enforced and
//! served.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use include_dir::{Dir, include_dir};
use jsonschema::{Draft, Resource, Validator};
use serde_json::{Value, json};

use super::typed::Typed;
use super::vocabulary::VocabularyConfig;

/// Every file under `schemas/`, embedded at build time.
static SCHEMA_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/schemas");

/// A field-level complaint: where (JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON pointer into the request body.
    pub pointer: String,
    /// What rule it broke.
    pub message: String,
}

/// `pointer: message`, the one way a field error is put in a sentence (a problem's `detail`,
/// an import's refusal). An empty pointer is the whole document, written `/` so that the
/// sentence never starts with a bare colon.
impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// A schema set that failed to compile (a broken build, never bad input).
#[derive(Debug, thiserror::Error)]
#[error("schema {name} does not compile: {reason}")]
pub struct SchemaError {
    name: String,
    reason: String,
}

/// The schemas: their documents, the typed validator that decides, and the compiled
/// validators that word a refusal, each compiled on first need (together about 30 MB, which
/// a server that is only sent valid events never pays).
pub struct Schemas {
    typed: Typed,
    /// Every document with an `$id`, for `$ref`s across files.
    resources: Vec<(String, Resource)>,
    event: Lazy,
    data: BTreeMap<String, Lazy>,
    /// `version-1.json`'s narrower forms, by event type, and under `meta` for the meta.
    version_1: BTreeMap<String, Lazy>,
    /// Raw schema documents by public name (`event`, `meeting.held`, `openapi`...).
    documents: BTreeMap<String, Value>,
    /// The OpenAPI document as served, built on first use: per schema set, not per process,
    /// because two servers of one process may extend the vocabularies differently.
    served_openapi: std::sync::OnceLock<Option<String>>,
}

/// A compiled validator, built on first use from its document.
struct Lazy {
    name: String,
    document: Value,
    compiled: OnceLock<Result<Validator, String>>,
}

impl Lazy {
    fn new(name: &str, document: Value) -> Lazy {
        Lazy {
            name: name.into(),
            document,
            compiled: OnceLock::new(),
        }
    }

    fn get(&self, resources: &[(String, Resource)]) -> Result<&Validator, SchemaError> {
        self.compiled
            .get_or_init(|| compile(&self.document, resources))
            .as_ref()
            .map_err(|reason| SchemaError {
                name: self.name.clone(),
                reason: reason.clone(),
            })
    }

    /// Every error of `instance`, at most [`MAX_ERRORS`]; a schema that does not compile
    /// (a broken build, which a test rules out) refuses everything, saying so.
    fn errors(
        &self,
        resources: &[(String, Resource)],
        instance: &Value,
        base: &str,
    ) -> Vec<FieldError> {
        match self.get(resources) {
            Ok(v) => collect(v, instance, base),
            Err(e) => vec![FieldError {
                pointer: base.to_string(),
                message: e.to_string(),
            }],
        }
    }
}

fn compile(document: &Value, resources: &[(String, Resource)]) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_resources(resources.iter().cloned())
        .build(document)
        .map_err(|e| e.to_string())
}

/// Most errors reported for one document: past this the client learns nothing new.
const MAX_ERRORS: usize = 20;

/// The public name of the schema of version 1's narrower forms.
const VERSION_1: &str = "version-1";

/// Its `$id`.
const VERSION_1_ID: &str = "https://annals.dev/schemas/version-1.json";

/// Says why a version-1 event is held to the older form, and how to use the newer one.
fn in_version_1(mut e: FieldError) -> FieldError {
    e.message = format!(
        "{} (schema_version 1; the structured form needs \"schema_version\": 2)",
        e.message
    );
    e
}

impl Schemas {
    /// Compiles every schema with the built-in vocabularies; fails only if the embedded files
    /// are broken.
    pub fn load() -> Result<Schemas, SchemaError> {
        Schemas::load_with(&VocabularyConfig::none())
    }

    /// Compiles every schema with `vocabulary`'s additions in the vocabulary document (checked
    /// by [`VocabularyConfig::check`] when the configuration loaded).
    pub fn load_with(vocabulary: &VocabularyConfig) -> Result<Schemas, SchemaError> {
        let mut documents = BTreeMap::new();
        let mut resources = Vec::new();
        let mut files: Vec<&include_dir::File<'static>> = SCHEMA_DIR.files().collect();
        if let Some(events) = SCHEMA_DIR.get_dir("events") {
            files.extend(events.files());
        }
        for file in files {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let mut value: Value =
                serde_json::from_slice(file.contents()).map_err(|e| SchemaError {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            if name == "vocabularies" {
                vocabulary.extend(&mut value);
            }
            if let Some(id) = value.get("$id").and_then(Value::as_str) {
                let resource = Resource::from_contents(value.clone()).map_err(|e| SchemaError {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
                resources.push((id.to_string(), resource));
            }
            documents.insert(name, value);
        }
        let document = |name: &str| -> Result<Value, SchemaError> {
            documents.get(name).cloned().ok_or_else(|| SchemaError {
                name: name.into(),
                reason: "missing".into(),
            })
        };
        // `append-request` is not used to validate (batches are checked event by event, each
        // with its own pointer), but served and documented: a test compiles every schema.
        let event = Lazy::new("event", document("event")?);
        let mut data = BTreeMap::new();
        for name in documents.keys() {
            if name.contains('.') {
                data.insert(name.clone(), Lazy::new(name, document(name)?));
            }
        }
        let mut version_1 = BTreeMap::new();
        let narrower = documents
            .get(VERSION_1)
            .and_then(|d| d.get("$defs"))
            .and_then(Value::as_object)
            .ok_or_else(|| SchemaError {
                name: VERSION_1.into(),
                reason: "missing, or without $defs".into(),
            })?;
        for key in narrower.keys() {
            let pointer = key.replace('~', "~0").replace('/', "~1");
            let doc = json!({ "$ref": format!("{VERSION_1_ID}#/$defs/{pointer}") });
            version_1.insert(key.clone(), Lazy::new(VERSION_1, doc));
        }
        let typed = Typed::new(&document("vocabularies")?);
        Ok(Schemas {
            typed,
            resources,
            event,
            data,
            version_1,
            documents,
            served_openapi: std::sync::OnceLock::new(),
        })
    }

    /// Validates one submitted event; pointers are prefixed with `base`. The typed validator
    /// decides; only a refusal asks the schema for its words.
    pub fn check_event(&self, event: &Value, base: &str) -> Vec<FieldError> {
        match self.typed.check_event(event, base) {
            Ok(()) => Vec::new(),
            Err(_) => self.schema_check_event(event, base),
        }
    }

    /// Validates the `data` of an event of type `event_type`, if the type exists.
    pub fn check_data(
        &self,
        event_type: &str,
        data: &Value,
        base: &str,
    ) -> Option<Vec<FieldError>> {
        match self.typed.check_data(event_type, data, base)? {
            Ok(()) => Some(Vec::new()),
            Err(_) => self.schema_check_data(event_type, data, base),
        }
    }

    /// Checks what schema version 1 narrows: `data` of an event of `event_type` (pointers
    /// prefixed with `data_base`) and its `meta` (with `meta_base`). Empty for other versions.
    pub fn check_version(
        &self,
        version: u64,
        event_type: &str,
        data: &Value,
        data_base: &str,
        meta: Option<&Value>,
        meta_base: &str,
    ) -> Vec<FieldError> {
        match self
            .typed
            .check_version(version, event_type, data, data_base, meta, meta_base)
        {
            Ok(()) => Vec::new(),
            Err(_) => {
                self.schema_check_version(version, event_type, data, data_base, meta, meta_base)
            }
        }
    }

    /// The typed validator.
    pub(crate) fn typed(&self) -> &Typed {
        &self.typed
    }

    /// [`Schemas::check_event`] by the compiled schema alone.
    pub(crate) fn schema_check_event(&self, event: &Value, base: &str) -> Vec<FieldError> {
        self.event.errors(&self.resources, event, base)
    }

    /// [`Schemas::check_data`] by the compiled schema alone.
    pub(crate) fn schema_check_data(
        &self,
        event_type: &str,
        data: &Value,
        base: &str,
    ) -> Option<Vec<FieldError>> {
        self.data
            .get(event_type)
            .map(|v| v.errors(&self.resources, data, base))
    }

    /// [`Schemas::check_version`] by the compiled schema alone.
    pub(crate) fn schema_check_version(
        &self,
        version: u64,
        event_type: &str,
        data: &Value,
        data_base: &str,
        meta: Option<&Value>,
        meta_base: &str,
    ) -> Vec<FieldError> {
        if version != 1 {
            return Vec::new();
        }
        let mut errors = Vec::new();
        if let Some(v) = self.version_1.get(event_type) {
            errors.extend(
                v.errors(&self.resources, data, data_base)
                    .into_iter()
                    .map(in_version_1),
            );
        }
        if let (Some(v), Some(meta)) = (self.version_1.get("meta"), meta) {
            errors.extend(
                v.errors(&self.resources, meta, meta_base)
                    .into_iter()
                    .map(in_version_1),
            );
        }
        errors
    }

    /// How many validators are compiled so far.
    #[cfg(test)]
    fn compiled(&self) -> usize {
        std::iter::once(&self.event)
            .chain(self.data.values())
            .chain(self.version_1.values())
            .filter(|l| l.compiled.get().is_some())
            .count()
    }

    /// Compiles every schema document, as a check that none is broken.
    pub fn compile_all(&self) -> Result<(), SchemaError> {
        for (name, doc) in &self.documents {
            if doc.get("$id").is_some() && name != "openapi" {
                compile(doc, &self.resources).map_err(|reason| SchemaError {
                    name: name.clone(),
                    reason,
                })?;
            }
        }
        self.event.get(&self.resources)?;
        for lazy in self.data.values().chain(self.version_1.values()) {
            lazy.get(&self.resources)?;
        }
        Ok(())
    }

    /// Every event type with a schema, sorted.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }

    /// The served form of the OpenAPI document, made by `build` from these schemas once.
    pub fn served_openapi(&self, build: impl FnOnce(&Schemas) -> Option<String>) -> Option<&str> {
        self.served_openapi.get_or_init(|| build(self)).as_deref()
    }

    /// A schema document by public name.
    pub fn document(&self, name: &str) -> Option<&Value> {
        self.documents.get(name)
    }

    /// Every public schema name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.documents.keys().map(String::as_str)
    }
}

fn collect(validator: &Validator, instance: &Value, base: &str) -> Vec<FieldError> {
    validator
        .iter_errors(instance)
        .take(MAX_ERRORS)
        .map(|e| FieldError {
            pointer: format!("{base}{}", e.instance_path),
            message: e.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{FieldError, Schemas};
    use serde_json::json;

    #[test]
    fn no_schema_is_compiled_until_an_event_is_refused_and_then_only_the_one_that_words_it() {
        let schemas = Schemas::load().unwrap();
        let mut event = json!({
            "type": "issue.defined",
            "data": {"issue_id": "issue:a", "label": "A"},
            "evidence": []
        });
        assert!(schemas.check_event(&event, "").is_empty());
        assert_eq!(
            schemas.check_data("issue.defined", &event["data"], "/data"),
            Some(vec![])
        );
        assert_eq!(schemas.compiled(), 0);
        event["data"]["label"] = json!(7);
        let errors = schemas
            .check_data("issue.defined", &event["data"], "/data")
            .unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pointer, "/data/label");
        assert_eq!(schemas.compiled(), 1);
    }

    #[test]
    fn a_field_error_reads_pointer_then_message_and_the_whole_document_is_a_slash() {
        let field = FieldError {
            pointer: "/data/speaker".into(),
            message: "must be a string".into(),
        };
        assert_eq!(field.to_string(), "/data/speaker: must be a string");
        let whole = FieldError {
            pointer: String::new(),
            message: "must be an object".into(),
        };
        assert_eq!(whole.to_string(), "/: must be an object");
    }
}
