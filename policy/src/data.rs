//! The data-access façade: one question about one securable of the lake's catalog (a catalog,
//! a schema or a table), asked by the runtime for every object a statement reads, writes,
//! creates, drops or grants on.
//!
//! Grants are facts, Cedar decides: the runtime computes the caller's effective Unity Catalog
//! privileges on the securable (direct, through groups, inherited from the parent schema and
//! catalog, `OWNER` for owners) and passes them in `context.privileges`; the policies turn them
//! into decisions, so an administrator can still `forbid` what a grant would allow
//! (`resource in Lakeward::Schema::"main.hr"`, say).

use crate::context::{self, Field};
use crate::entity_store::{self, AttrValue, EntitySpec};
use crate::policy_set::{Decision, Evaluation, PolicyBundle};
use crate::request::{
    self, checked_request, AuthzRequest, PrincipalInput, ResourceInput, ResourceShape, Shape,
};
use cedar_policy::{Entities, EntityId, EntityUid, Request};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A catalog, schema or table, by its (lower-case) names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Securable {
    Catalog {
        name: String,
    },
    Schema {
        catalog: String,
        name: String,
    },
    Table {
        catalog: String,
        schema: String,
        name: String,
    },
}

impl Securable {
    /// `catalog`, `catalog.schema` or `catalog.schema.table`: the entity id, and the name
    /// error messages and the grants API use.
    pub fn full_name(&self) -> String {
        match self {
            Securable::Catalog { name } => name.clone(),
            Securable::Schema { catalog, name } => format!("{catalog}.{name}"),
            Securable::Table {
                catalog,
                schema,
                name,
            } => format!("{catalog}.{schema}.{name}"),
        }
    }

    /// `CATALOG`, `SCHEMA` or `TABLE`, as the Unity Catalog API names securable types.
    pub fn kind(&self) -> &'static str {
        match self {
            Securable::Catalog { .. } => "CATALOG",
            Securable::Schema { .. } => "SCHEMA",
            Securable::Table { .. } => "TABLE",
        }
    }

    /// The securable itself, then its schema and catalog.
    pub fn lineage(&self) -> Vec<Securable> {
        match self {
            Securable::Catalog { .. } => vec![self.clone()],
            Securable::Schema { catalog, .. } => vec![
                self.clone(),
                Securable::Catalog {
                    name: catalog.clone(),
                },
            ],
            Securable::Table {
                catalog, schema, ..
            } => vec![
                self.clone(),
                Securable::Schema {
                    catalog: catalog.clone(),
                    name: schema.clone(),
                },
                Securable::Catalog {
                    name: catalog.clone(),
                },
            ],
        }
    }
}

/// One data-access question.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataAuthzRequest {
    /// Who is asking, resolved as for gateway requests (groups, roles, workspace membership).
    pub principal: PrincipalInput,
    /// `SelectTable`, `ModifyTable`, `DropTable`, `CreateTable`, `DropSchema`, `CreateSchema`,
    /// `CreateCatalog` or `ManageGrants`: an action of the schema whose resource type matches
    /// `securable`.
    pub action: String,
    pub securable: Securable,
    /// The caller's effective privileges on `securable` (upper case, `ALL_PRIVILEGES`,
    /// `OWNER`, ...).
    pub privileges: BTreeSet<String>,
    pub client_ip: IpAddr,
    /// (id, name) of the workspace whose catalog this is.
    pub workspace: (i64, String),
    pub account_id: String,
    pub auth_method: String,
    pub token_id: Option<String>,
    pub request_time_unix: i64,
}

impl PolicyBundle {
    /// Decides one data-access question. Never fails: a request that cannot be built (an
    /// unknown action, a schema without the catalog types) is a deny with the reason in
    /// [`Decision::errors`].
    pub fn authorize_data(&self, request: &DataAuthzRequest) -> Decision {
        self.authorize_data_with(request, Evaluation::Sliced)
    }

    /// [`Self::authorize_data`] over the policies `evaluation` says: what the differential
    /// test compares.
    pub fn authorize_data_with(
        &self,
        request: &DataAuthzRequest,
        evaluation: Evaluation,
    ) -> Decision {
        match self.build_data(request, evaluation) {
            Ok((req, entities)) => self.decide_with(&req, &entities, evaluation),
            Err(error) => Decision::deny_with_error(error),
        }
    }

    fn build_data(
        &self,
        req: &DataAuthzRequest,
        evaluation: Evaluation,
    ) -> Result<(Request, Entities), String> {
        let vocab = self.vocabulary();
        let data = vocab.data.as_ref().ok_or_else(|| {
            "the policy schema declares no Lakeward::Catalog, Schema and Table; data access is \
             denied"
                .to_owned()
        })?;
        let action = vocab.action(&req.action)?;
        // The principal, its groups and the workspace, exactly as for a gateway request.
        let as_gateway = AuthzRequest {
            principal: req.principal.clone(),
            action: req.action.clone(),
            resource: ResourceInput::Workspace,
            client_ip: req.client_ip,
            workspace: Some(req.workspace.clone()),
            account_id: req.account_id.clone(),
            auth_method: req.auth_method.clone(),
            token_id: req.token_id.clone(),
            request_time_unix: req.request_time_unix,
        };
        let built = request::entities(vocab, &as_gateway)?;
        let workspace = built
            .workspace
            .clone()
            .ok_or_else(|| "the data request addresses no workspace".to_owned())?;
        let mut entities = built.entities;

        // The securable and its ancestors, outermost first so each knows its parent's uid.
        let mut parent = workspace.clone();
        let mut resource = None;
        for securable in req.securable.lineage().into_iter().rev() {
            let (ty, name) = match &securable {
                Securable::Catalog { name } => (&data.catalog, name),
                Securable::Schema { name, .. } => (&data.schema, name),
                Securable::Table { name, .. } => (&data.table, name),
            };
            let me =
                EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(securable.full_name()));
            entities.push(
                EntitySpec::new(me.clone(), vec![parent.clone()])
                    .with("name", AttrValue::String(name.clone())),
            );
            parent = me.clone();
            resource = Some(me);
        }
        let resource = resource.ok_or_else(|| "no securable".to_owned())?;

        let mut fields = request::context_fields(&as_gateway, Some(workspace), built.account);
        fields.push((
            "privileges",
            Field::StringSet(req.privileges.iter().cloned().collect()),
        ));
        let schema = self.schema();
        match evaluation {
            Evaluation::WholeSet => {
                let context = context::checked(fields)?;
                let request = checked_request(
                    built.principal,
                    action.uid.clone(),
                    resource,
                    context,
                    schema,
                )?;
                let entities = entity_store::checked(&entities, [action.entity.clone()], None)?;
                Ok((request, entities))
            }
            Evaluation::Sliced => {
                let shape = Shape {
                    action: action.index(),
                    principal: req.principal.kind,
                    resource: match req.securable {
                        Securable::Catalog { .. } => ResourceShape::Catalog,
                        Securable::Schema { .. } => ResourceShape::Schema,
                        Securable::Table { .. } => ResourceShape::Table,
                    },
                    workspace: true,
                    token: req.token_id.is_some(),
                    privileges_empty: Some(req.privileges.is_empty()),
                };
                let context = context::direct(&vocab.constructors, fields)?;
                let request = vocab.shapes.request(
                    shape,
                    (built.principal, action.uid.clone(), resource),
                    context,
                    schema,
                )?;
                let entities = entity_store::fast(entities, &action.entity, &action.shared)?;
                Ok((request, entities))
            }
        }
    }
}
