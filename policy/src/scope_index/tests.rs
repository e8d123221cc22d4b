use super::*;
use crate::test_policies::{actions, any_entities, any_policy, schema, ENTITIES};
use crate::test_rng::Rng;
use cedar_policy::{Authorizer, Context, Entity, PolicyId, RestrictedExpression};
use std::str::FromStr;

/// Cedar's answer over the whole set, in the index's terms.
fn whole_set(set: &PolicySet, request: &Request, entities: &Entities) -> Outcome {
    let response = Authorizer::new().is_authorized(request, set, entities);
    let diagnostics = response.diagnostics();
    let mut determining: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    let mut errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
    determining.sort();
    errors.sort();
    Outcome {
        allows: response.decision() == cedar_policy::Decision::Allow,
        determining,
        errors,
    }
}

fn sorted(mut outcome: Outcome) -> Outcome {
    outcome.determining.sort();
    outcome.errors.sort();
    outcome
}

fn uid(text: &str) -> EntityUid {
    EntityUid::from_str(text).expect("an entity literal")
}

/// Any principal, action and resource (types need not fit), and a context with any of its
/// fields, or none.
fn any_request(rng: &mut Rng, actions: &[String]) -> Request {
    let mut pairs = Vec::new();
    if rng.chance(70) {
        let ip = if rng.chance(50) {
            "10.1.2.3"
        } else {
            "192.168.0.1"
        };
        pairs.push(("clientIp".to_owned(), RestrictedExpression::new_ip(ip)));
    }
    if rng.chance(70) {
        let time = *rng.pick(&[0, 5, 1_700_000_000]);
        pairs.push((
            "requestTime".to_owned(),
            RestrictedExpression::new_long(time),
        ));
    }
    if rng.chance(50) {
        let ws = uid(rng.pick_str(&[r#"Lakeward::Workspace::"1""#, r#"Lakeward::Workspace::"2""#]));
        pairs.push((
            "workspace".to_owned(),
            RestrictedExpression::new_entity_uid(ws),
        ));
    }
    if rng.chance(50) {
        let method = *rng.pick(&["pat", "oauth"]);
        pairs.push((
            "authMethod".to_owned(),
            RestrictedExpression::new_string(method.into()),
        ));
    }
    Request::new(
        uid(rng.pick_str(ENTITIES)),
        uid(rng.pick(actions).as_str()),
        uid(rng.pick_str(ENTITIES)),
        Context::from_pairs(pairs).expect("a context"),
        None,
    )
    .expect("a request without a schema")
}

/// The differential test of the index: random policy sets (permit and forbid; scopes with
/// `==`, `in` entities and groups, `is`, `is ... in`, actions and action groups and lists;
/// conditions, some of which fail to evaluate) and random requests over random entity
/// hierarchies; the slice must give exactly Cedar's decision, determining policies and
/// errors over the whole set. Seeded, so a failure reproduces.
#[test]
fn a_slice_decides_exactly_as_the_whole_set() {
    const SEED: u64 = 13;
    const POOL: usize = 300;
    const SETS: usize = 500;
    const REQUESTS: usize = 5;
    let schema = schema();
    let actions = actions(&schema);
    let action_entities: Vec<Entity> = schema
        .action_entities()
        .expect("the schema's actions")
        .iter()
        .cloned()
        .collect();
    let mut rng = Rng::new(SEED);
    let pool: Vec<cedar_policy::Policy> = (0..POOL)
        .map(|_| {
            let text = any_policy(&mut rng, &actions);
            cedar_policy::Policy::parse(None, &text).unwrap_or_else(|e| panic!("{text}: {e}"))
        })
        .collect();
    let (mut compared, mut evaluated, mut offered) = (0, 0, 0);
    for set_number in 0..SETS {
        let size = rng.below(40);
        let mut set = PolicySet::new();
        let mut texts = Vec::new();
        for k in 0..size {
            let policy = rng.pick(&pool);
            texts.push(format!("p{k}: {policy}"));
            set.add(policy.new_id(PolicyId::new(format!("p{k}"))))
                .expect("distinct ids");
        }
        let index = ScopeIndex::new(&set);
        for _ in 0..REQUESTS {
            let request = any_request(&mut rng, &actions);
            // The request's action with its ancestors (what `action in` reads), and another.
            let mut store = any_entities(&mut rng);
            let other = rng.pick(&action_entities).clone();
            store.extend(
                action_entities
                    .iter()
                    .filter(|a| Some(&a.uid()) == request.action() && a.uid() != other.uid())
                    .cloned(),
            );
            store.push(other);
            // A hierarchy with a cycle is no store at all.
            let Ok(entities) = Entities::from_entities(store, None) else {
                continue;
            };
            let expected = whole_set(&set, &request, &entities);
            let got = index.evaluate(&request, &entities).map(sorted);
            assert_eq!(
                got.as_ref(),
                Some(&expected),
                "seed {SEED}, set {set_number}\npolicies: {texts:#?}\nrequest: {request}\nentities: {}",
                entities.as_ref().to_json_value().map(|j| j.to_string()).unwrap_or_default()
            );
            compared += 1;
            evaluated += index.slice(&request, &entities).len();
            offered += size;
        }
    }
    assert!(
        compared > SETS * REQUESTS / 2,
        "only {compared} cases compared"
    );
    // Exactness alone would let the slice be the whole set.
    assert!(
        evaluated * 4 < offered,
        "the slices held {evaluated} of {offered} policies"
    );
}

fn set_of(texts: &[&str]) -> PolicySet {
    let mut set = PolicySet::new();
    for (k, text) in texts.iter().enumerate() {
        let policy = cedar_policy::Policy::parse(Some(PolicyId::new(format!("p{k}"))), *text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        set.add(policy).expect("distinct ids");
    }
    set
}

#[test]
fn a_policy_per_group_is_filed_by_its_group_and_decided_alone() {
    // The issue's shape: each group's policy names the action all of them share.
    let texts: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "permit (principal in Lakeward::Group::\"g{i}\", \
                 action == Lakeward::Action::\"ExecuteStatement\", \
                 resource == Lakeward::Workspace::\"{}\");",
                i % 10
            )
        })
        .collect();
    let set = set_of(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let index = ScopeIndex::new(&set);
    // One bucket per group, plus the unscoped one.
    assert_eq!(index.bucket_count(), 201);
    let user = Entity::new_no_attrs(
        uid(r#"Lakeward::User::"u""#),
        ["g3", "g13", "g77"]
            .iter()
            .map(|g| uid(&format!("Lakeward::Group::\"{g}\"")))
            .collect(),
    );
    let entities = Entities::from_entities([user], None).expect("a store");
    let request = Request::new(
        uid(r#"Lakeward::User::"u""#),
        uid(r#"Lakeward::Action::"ExecuteStatement""#),
        uid(r#"Lakeward::Workspace::"3""#),
        Context::empty(),
        None,
    )
    .expect("a request");
    // g3 and g13 are in workspace 3; g77's policy is for workspace 7.
    let slice: Vec<String> = index
        .slice(&request, &entities)
        .iter()
        .map(|p| p.policy.id().to_string())
        .collect();
    assert_eq!(slice, ["p3", "p13"]);
    let outcome = index.evaluate(&request, &entities).map(sorted);
    assert_eq!(outcome, Some(whole_set(&set, &request, &entities)));
}

#[test]
fn a_policy_filed_under_two_actions_is_decided_once() {
    // The request's action is both listed and in the listed group.
    let set = set_of(&[
        r#"permit (principal, action in [Lakeward::Action::"GetWarehouse", Lakeward::Action::"DataAccess"], resource);"#,
        r#"forbid (principal, action in [Lakeward::Action::"DataAccess", Lakeward::Action::"ListWarehouses"], resource) when { context.requestTime * 9223372036854775807 > 0 };"#,
    ]);
    let index = ScopeIndex::new(&set);
    let schema = schema();
    let entities = Entities::from_entities([], Some(&schema)).expect("the schema's actions");
    for (action, time) in [("GetWarehouse", 0), ("ListWarehouses", 2)] {
        let request = Request::new(
            uid(r#"Lakeward::User::"u""#),
            uid(&format!("Lakeward::Action::\"{action}\"")),
            uid(r#"Lakeward::Workspace::"1""#),
            Context::from_pairs([(
                "requestTime".to_owned(),
                RestrictedExpression::new_long(time),
            )])
            .expect("a context"),
            None,
        )
        .expect("a request");
        let outcome = index.evaluate(&request, &entities).map(sorted);
        let expected = whole_set(&set, &request, &entities);
        assert_eq!(outcome.as_ref(), Some(&expected), "{action}");
        assert_eq!(expected.determining, ["p0"], "{action}");
        assert_eq!(expected.errors.len(), usize::from(time > 0), "{expected:?}");
    }
}
