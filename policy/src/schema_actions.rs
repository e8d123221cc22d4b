//! The actions a schema declares, sorted by who asks for them: the gateway (one decision per
//! request, from its route table) or the runtime (one per securable a statement touches).
//! A test checks the gateway's route table against the first kind, so that an endpoint cannot
//! name an action the schema lacks and the schema cannot keep an action no route uses.

use crate::error::PolicyError;
use cedar_policy::{EntityUid, Schema};

/// The entity types of the lake's catalog; an action decided on them is a data action.
const SECURABLE_TYPES: [&str; 3] = ["Catalog", "Schema", "Table"];

/// Who decides with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// A group that policies name instead of single actions; never asked for itself.
    Group,
    /// Asked by the gateway for a request (its route table names it).
    Request,
    /// Asked by the runtime for a catalog, schema or table.
    Data,
}

/// One action of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaAction {
    /// The action's id (`CreateToken`), without `Action::`.
    pub name: String,
    pub kind: ActionKind,
}

/// Every action `schema_text` declares, in the schema's order of ids.
pub fn schema_actions(schema_text: &str) -> Result<Vec<SchemaAction>, PolicyError> {
    let (schema, _warnings) =
        Schema::from_cedarschema_str(schema_text).map_err(|err| PolicyError::Load {
            path: "schema".into(),
            message: err.to_string(),
        })?;
    let groups: Vec<&EntityUid> = schema.action_groups().collect();
    let mut actions: Vec<SchemaAction> = schema
        .actions()
        .map(|uid| {
            let kind = if groups.contains(&uid) {
                ActionKind::Group
            } else if decided_on_securables(&schema, uid) {
                ActionKind::Data
            } else {
                ActionKind::Request
            };
            SchemaAction {
                name: uid.id().unescaped().to_owned(),
                kind,
            }
        })
        .collect();
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(actions)
}

fn decided_on_securables(schema: &Schema, action: &EntityUid) -> bool {
    let Some(mut resources) = schema.resources_for_action(action) else {
        return false;
    };
    resources.all(|ty| SECURABLE_TYPES.contains(&ty.basename()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = include_str!("../../deploy/policies/lakeward.cedarschema");

    fn kind_of(actions: &[SchemaAction], name: &str) -> Option<ActionKind> {
        actions.iter().find(|a| a.name == name).map(|a| a.kind)
    }

    #[test]
    fn actions_are_sorted_by_who_asks_for_them() {
        let actions = schema_actions(SCHEMA).unwrap();
        assert_eq!(kind_of(&actions, "DataAccess"), Some(ActionKind::Group));
        assert_eq!(kind_of(&actions, "CreateToken"), Some(ActionKind::Request));
        assert_eq!(
            kind_of(&actions, "GetHostMetadata"),
            Some(ActionKind::Request)
        );
        assert_eq!(kind_of(&actions, "SelectTable"), Some(ActionKind::Data));
        assert_eq!(kind_of(&actions, "CreateSchema"), Some(ActionKind::Data));
        assert_eq!(kind_of(&actions, "ManageGrants"), Some(ActionKind::Data));
        assert_eq!(kind_of(&actions, "NoSuchAction"), None);
    }

    #[test]
    fn a_broken_schema_is_an_error() {
        assert!(schema_actions("namespace X { action").is_err());
    }
}
