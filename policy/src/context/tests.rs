use super::*;
use crate::test_rng::Rng;
use std::str::FromStr;

fn any_fields(rng: &mut Rng) -> Vec<(&'static str, Field)> {
    let mut fields = Vec::new();
    let ips = [
        "10.1.2.3",
        "::1",
        "2001:db8::7",
        "192.168.0.0/16",
        "not an address",
        "",
    ];
    let keys = [
        "clientIp",
        "workspace",
        "account",
        "authMethod",
        "requestTime",
        "privileges",
    ];
    for _ in 0..rng.below(7) {
        let key = *rng.pick(&keys);
        let field = match rng.below(5) {
            0 => Field::Ip((*rng.pick(&ips)).to_owned()),
            1 => Field::Entity(
                EntityUid::from_str(r#"Lakeward::Workspace::"1""#).expect("an entity literal"),
            ),
            2 => Field::String(rng.below(3).to_string()),
            3 => Field::Long(*rng.pick(&[0, -1, i64::MAX])),
            _ => Field::StringSet((0..rng.below(3)).map(|i| format!("P{i}")).collect()),
        };
        fields.push((key, field));
    }
    fields
}

/// The differential test of the context: the directly made values are the public API's, and
/// what the public API refuses (an address `ip` rejects, a repeated key) is refused alike.
#[test]
fn the_direct_context_is_cedars_context() {
    const SEED: u64 = 11;
    let constructors = Constructors::new().expect("the ip constructor");
    let mut rng = Rng::new(SEED);
    let (mut built, mut refused) = (0, 0);
    for case in 0..3_000 {
        let fields = any_fields(&mut rng);
        let expected = checked(fields.clone());
        let got = direct(&constructors, fields.clone());
        match (&expected, &got) {
            (Ok(expected), Ok(got)) => {
                built += 1;
                assert_eq!(
                    expected.as_ref(),
                    got.as_ref(),
                    "seed {SEED}, case {case}: {fields:?}"
                );
            }
            (Err(expected), Err(got)) => {
                refused += 1;
                assert_eq!(expected, got, "seed {SEED}, case {case}: {fields:?}");
            }
            _ => panic!("seed {SEED}, case {case}: {expected:?} against {got:?}: {fields:?}"),
        }
    }
    assert!(
        built > 1_000 && refused > 100,
        "{built} built, {refused} refused"
    );
}
