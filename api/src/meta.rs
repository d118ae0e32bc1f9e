//! Object metadata shared by every kind, as in Kubernetes' `ObjectMeta`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Timestamps are RFC 3339 in UTC with second precision, as Kubernetes writes them.
pub type Time = chrono::DateTime<chrono::Utc>;

/// Serde helpers writing [`Time`] the way Kubernetes does ("2024-01-02T03:04:05Z").
pub mod time_format {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Time;

    pub fn serialize<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| serde::de::Error::custom(format!("invalid time {t:?}: {e}")))
        })
        .transpose()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn meta_1_times_are_rfc3339_seconds_in_utc() {
        let meta = ObjectMeta {
            name: "a".into(),
            creation_timestamp: Some(
                chrono::Utc
                    .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
                    .unwrap()
                    .checked_add_signed(chrono::Duration::milliseconds(250))
                    .unwrap(),
            ),
            ..Default::default()
        };
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(
            json,
            r#"{"name":"a","creationTimestamp":"2024-01-02T03:04:05Z"}"#
        );
        // Other offsets and fractions are accepted and normalised to UTC.
        let parsed: ObjectMeta =
            serde_json::from_str(r#"{"deletionTimestamp":"2024-01-02T05:04:05.5+02:00"}"#).unwrap();
        assert_eq!(
            parsed.deletion_timestamp.unwrap(),
            chrono::Utc
                .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
                .unwrap()
                .checked_add_signed(chrono::Duration::milliseconds(500))
                .unwrap()
        );
        let bad = serde_json::from_str::<ObjectMeta>(r#"{"creationTimestamp":"yesterday"}"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("invalid time \"yesterday\"")
        );
    }

    #[test]
    fn meta_2_empty_parts_are_left_out() {
        assert_eq!(serde_json::to_string(&ObjectMeta::default()).unwrap(), "{}");
        let parsed: ObjectMeta = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, ObjectMeta::default());
        assert!(serde_json::from_str::<ObjectMeta>(r#"{"nam":"x"}"#).is_err());
        assert!(LabelSelector::default().is_empty());
    }
}
