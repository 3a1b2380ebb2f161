//! A deployment's additions to the closed vocabularies of `schemas/vocabularies.json`
//! (`[vocabulary]` in the configuration): their check at start and their merge into the
//! vocabulary document before the schemas compile, so the running validator and
//! `GET /schemas/vocabularies` both enforce and show the effective lists. This module must
//! never remove or rename a built-in value (stored records use them forever), and never extend
//! a list the vocabulary file does not mark with `x-annals-config-key`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The vocabulary file's definition keyword that names the configuration key extending it.
pub const CONFIG_KEY: &str = "x-annals-config-key";

/// Longest added value, in bytes: a word, not a sentence.
const MAX_VALUE_BYTES: usize = 64;

/// Values a deployment adds to the extensible vocabularies (`[vocabulary]`). Every key is
/// required (the shipped `config/default.toml` gives each an empty list).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VocabularyConfig {
    /// Statement tones (`statement.made` `tone`).
    pub tones: Vec<String>,
    /// Position stances (`position.stated` `stance`).
    pub stances: Vec<String>,
    /// Issue statuses (`issue.status_changed` `status`).
    pub statuses: Vec<String>,
    /// Changes to announced talks (`talks.status_changed` `status`).
    pub talks_statuses: Vec<String>,
    /// Agreement stages (`agreement.reached` `stage`).
    pub agreement_stages: Vec<String>,
    /// Source kinds (`source.registered` `kind`).
    pub source_kinds: Vec<String>,
    /// Actor kinds (`actor.registered` `kind`).
    pub actor_kinds: Vec<String>,
    /// Meeting participant roles (`meeting.held` `participants[].role`).
    pub participant_roles: Vec<String>,
    /// Meeting formats (`meeting.held` / `talks.scheduled` `format`).
    pub meeting_formats: Vec<String>,
}

/// An added value that is not a lower-case word; names the offending key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "key `vocabulary.{key}[{index}]`: `{value}` is not a vocabulary word (1 to {MAX_VALUE_BYTES} bytes of a-z, 0-9, `_`, `-`, starting with a letter)"
)]
pub struct VocabularyError {
    /// The configuration key under `[vocabulary]`.
    pub key: &'static str,
    /// The entry's position in the list.
    pub index: usize,
    /// The refused entry.
    pub value: String,
}

impl VocabularyConfig {
    /// No additions: the built-in vocabularies alone.
    pub fn none() -> VocabularyConfig {
        VocabularyConfig {
            tones: vec![],
            stances: vec![],
            statuses: vec![],
            talks_statuses: vec![],
            agreement_stages: vec![],
            source_kinds: vec![],
            actor_kinds: vec![],
            participant_roles: vec![],
            meeting_formats: vec![],
        }
    }

    /// Every list with its configuration key.
    pub fn lists(&self) -> [(&'static str, &[String]); 9] {
        [
            ("tones", &self.tones),
            ("stances", &self.stances),
            ("statuses", &self.statuses),
            ("talks_statuses", &self.talks_statuses),
            ("agreement_stages", &self.agreement_stages),
            ("source_kinds", &self.source_kinds),
            ("actor_kinds", &self.actor_kinds),
            ("participant_roles", &self.participant_roles),
            ("meeting_formats", &self.meeting_formats),
        ]
    }

    /// Refuses the first entry that is not a word: the values become JSON Schema enum
    /// members and view keys, so they stay as plain as the built-in ones.
    pub fn check(&self) -> Result<(), VocabularyError> {
        for (key, values) in self.lists() {
            for (index, value) in values.iter().enumerate() {
                if !is_word(value) {
                    return Err(VocabularyError {
                        key,
                        index,
                        value: value.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Appends the additions to the `enum` of each definition of the vocabulary document
    /// whose `x-annals-config-key` names their list. A value already in the list is not
    /// repeated: a later release may adopt a word a deployment added first.
    pub fn extend(&self, document: &mut Value) {
        let Some(defs) = document.get_mut("$defs").and_then(Value::as_object_mut) else {
            return;
        };
        for def in defs.values_mut() {
            let Some(key) = def.get(CONFIG_KEY).and_then(Value::as_str) else {
                continue;
            };
            let Some((_, added)) = self.lists().into_iter().find(|(k, _)| *k == key) else {
                continue;
            };
            if let Some(list) = def.get_mut("enum").and_then(Value::as_array_mut) {
                for value in added {
                    if !list.iter().any(|v| v == value.as_str()) {
                        list.push(Value::String(value.clone()));
                    }
                }
            }
        }
    }
}

/// A lower-case word: a letter, then letters, digits, `_` or `-`.
fn is_word(value: &str) -> bool {
    let mut chars = value.chars();
    value.len() <= MAX_VALUE_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabularies() -> Value {
        crate::event::Schemas::load()
            .unwrap()
            .document("vocabularies")
            .unwrap()
            .clone()
    }

    #[test]
    fn every_configuration_key_extends_exactly_one_vocabulary_and_every_extensible_one_has_a_key() {
        let doc = vocabularies();
        let mut marked: Vec<&str> = doc["$defs"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|d| d.get(CONFIG_KEY).and_then(Value::as_str))
            .collect();
        marked.sort_unstable();
        let mut keys: Vec<&str> = VocabularyConfig::none()
            .lists()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        assert_eq!(marked, keys);
    }

    #[test]
    fn an_added_value_joins_its_list_once_and_no_other() {
        let mut doc = vocabularies();
        let mut added = VocabularyConfig::none();
        added.tones = vec!["firm".into(), "neutral".into(), "firm".into()];
        added.check().unwrap();
        added.extend(&mut doc);
        let tones = doc["$defs"]["tone"]["enum"].as_array().unwrap();
        assert_eq!(tones.iter().filter(|t| *t == "firm").count(), 1);
        assert_eq!(tones.iter().filter(|t| *t == "neutral").count(), 1);
        assert!(
            !doc["$defs"]["stance"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "firm")
        );
    }

    #[test]
    fn an_entry_that_is_not_a_word_is_refused_naming_its_key_and_index() {
        for bad in ["", "Firm", "very firm", "9lives", &"a".repeat(65)] {
            let mut added = VocabularyConfig::none();
            added.stances = vec!["firm".into(), bad.to_string()];
            let err = added.check().unwrap_err();
            assert_eq!((err.key, err.index), ("stances", 1), "{bad:?}");
            assert!(err.to_string().contains("vocabulary.stances[1]"), "{err}");
        }
        let mut fine = VocabularyConfig::none();
        fine.agreement_stages = vec!["interim-arrangement".into(), "stage_2".into()];
        assert_eq!(fine.check(), Ok(()));
    }
}
