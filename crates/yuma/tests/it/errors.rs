//! Malformed inputs are rejected with a `YumaError`, never answered or panicked on.

use agora_primitives::fixed::I64F64;
use agora_yuma::{run_epoch, YumaError};

use crate::support::{default_params, empty_subnet};

#[test]
fn mismatched_lengths() {
    let params = default_params();
    let mut s = empty_subnet(3, 1);
    s.last_update.pop();
    assert!(matches!(
        run_epoch(&s, &params),
        Err(YumaError::LengthMismatch {
            field: "last_update",
            expected: 3,
            actual: 2
        })
    ));
    let mut s = empty_subnet(3, 1);
    s.bonds.push(Vec::new());
    assert!(matches!(
        run_epoch(&s, &params),
        Err(YumaError::LengthMismatch { field: "bonds", .. })
    ));
    let mut s = empty_subnet(3, 1);
    s.commit_blocks = Some(vec![None]);
    assert!(matches!(
        run_epoch(&s, &params),
        Err(YumaError::LengthMismatch {
            field: "commit_blocks",
            ..
        })
    ));
}

#[test]
fn uid_out_of_range() {
    let params = default_params();
    let mut s = empty_subnet(3, 1);
    s.weights[1] = vec![(0, 1), (3, 1)];
    assert_eq!(
        run_epoch(&s, &params),
        Err(YumaError::UidOutOfRange {
            field: "weights",
            row: 1,
            uid: 3,
            n: 3
        })
    );
    let mut s = empty_subnet(3, 1);
    s.bonds[2] = vec![(7, 1)];
    assert_eq!(
        run_epoch(&s, &params),
        Err(YumaError::UidOutOfRange {
            field: "bonds",
            row: 2,
            uid: 7,
            n: 3
        })
    );
    let mut s = empty_subnet(3, 1);
    s.owner_uid = Some(3);
    assert_eq!(
        run_epoch(&s, &params),
        Err(YumaError::OwnerOutOfRange { owner: 3, n: 3 })
    );
}

#[test]
fn duplicate_uids_in_a_row() {
    let params = default_params();
    let mut s = empty_subnet(3, 1);
    s.weights[0] = vec![(1, 5), (2, 5), (1, 7)];
    assert_eq!(
        run_epoch(&s, &params),
        Err(YumaError::DuplicateUid {
            field: "weights",
            row: 0,
            uid: 1
        })
    );
    let mut s = empty_subnet(3, 1);
    s.bonds[1] = vec![(2, 5), (2, 5)];
    assert_eq!(
        run_epoch(&s, &params),
        Err(YumaError::DuplicateUid {
            field: "bonds",
            row: 1,
            uid: 2
        })
    );
    // The same uid in different rows is fine.
    let mut s = empty_subnet(3, 1);
    s.weights[0] = vec![(1, 5)];
    s.weights[2] = vec![(1, 5)];
    assert!(run_epoch(&s, &params).is_ok());
}

#[test]
fn negative_stake() {
    let params = default_params();
    let mut s = empty_subnet(2, 1);
    s.stake[1] = I64F64::from_num(-1);
    assert_eq!(
        run_epoch(&s, &params),
        Err(YumaError::NegativeStake { uid: 1 })
    );
}
