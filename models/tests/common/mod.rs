//! Strategies shared by the property tests of the models.

use converge_models::{Intent, Workload};
use proptest::prelude::*;

/// Intents a workload's models accept, over small domains so that ops
/// collide (same element, same field, same value) often.
pub fn intent(workload: Workload) -> BoxedStrategy<Intent> {
    match workload {
        Workload::GCounter => (0i64..10).prop_map(Intent::Increment).boxed(),
        Workload::PnCounter => (-10i64..10).prop_map(Intent::Increment).boxed(),
        Workload::GSet => (0u64..8).prop_map(Intent::Add).boxed(),
        Workload::TwoPSet => prop_oneof![
            (0u64..5).prop_map(Intent::Add),
            (0u64..5).prop_map(Intent::Remove),
        ]
        .boxed(),
        Workload::OrSet => prop_oneof![
            (0u64..4).prop_map(Intent::Add),
            (0u64..4).prop_map(Intent::Remove),
        ]
        .boxed(),
        Workload::LwwRegister | Workload::MvRegister => (0u64..4).prop_map(Intent::Write).boxed(),
        Workload::LwwMap => prop_oneof![
            (0u32..3, 0u64..4).prop_map(|(field, value)| Intent::Put { field, value }),
            (0u32..3).prop_map(|field| Intent::Delete { field }),
        ]
        .boxed(),
    }
}
