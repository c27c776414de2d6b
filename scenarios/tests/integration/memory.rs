//! Memory hot-plug through the scenario runner: the main job (`cell_swap`) moves pages by both
//! methods and reports every phase; a hot-remove whose hugetlb pages need compaction first.

use os_model::memhotplug::{MemOpKind, MemOpReport};
use scenarios::{RunOptions, Scenario, run};

use crate::common::root;

fn mem_ops(path: &str) -> (scenarios::RunResult, Vec<MemOpReport>) {
    let scn = Scenario::load(&root().join(path)).unwrap_or_else(|e| panic!("{e}"));
    let r = run(&scn, &RunOptions::default()).unwrap();
    let ops = r.os.as_ref().unwrap().mem_hotplug().done().to_vec();
    (r, ops)
}

#[test]
fn the_cell_swap_moves_pages_by_both_methods_and_reports_each_phase() {
    let (r, ops) = mem_ops("scenarios/cell_swap.toml");
    assert_eq!(r.exit_code(), 0, "{:?}", r.violations.kept().first());
    assert!(r.violations.is_empty());
    let remove = ops
        .iter()
        .find(|o| o.kind == MemOpKind::CellRemove)
        .unwrap();
    assert_eq!(remove.result, Some(Ok(())));
    let m = &remove.moved;
    // Remap (mlocked and hugetlb pages among them) and swapout (cold anonymous pages to swap,
    // clean page-cache pages dropped), dirty file pages written back first.
    assert!(m.remapped > 0 && m.mlocked > 0 && m.huge > 0, "{m:?}");
    assert!(
        m.swapped > 0 && m.dropped > 0 && m.written_back > 0,
        "{m:?}"
    );
    let steps: Vec<&str> = remove.steps.iter().map(|s| s.step.name()).collect();
    assert_eq!(
        steps,
        [
            "cpus_down",
            "isolate",
            "migrate",
            "offline_blocks",
            "teardown",
            "flush_caches",
            "remove_chipset",
            "eject"
        ]
    );
    let add = ops.iter().find(|o| o.kind == MemOpKind::CellAdd).unwrap();
    assert_eq!(add.result, Some(Ok(())));
    let steps: Vec<&str> = add.steps.iter().map(|s| s.step.name()).collect();
    assert_eq!(
        steps,
        ["add_chipset", "online_blocks", "zonelists", "cpus_up"]
    );
    // Every block is back online at the end.
    let vm = r.os.as_ref().unwrap().vm().unwrap();
    assert!(
        vm.phys
            .blocks
            .iter()
            .all(|b| b.state == os_model::mm::BlockState::Online)
    );
}

#[test]
fn hugetlb_pages_whose_target_needs_compaction_move_in_two_stages() {
    let (r, ops) = mem_ops("scenarios/tests/memory/hugetlb_compaction.toml");
    assert_eq!(r.exit_code(), 0, "{:?}", r.violations.kept().first());
    let remove = ops
        .iter()
        .find(|o| o.kind == MemOpKind::CellRemove)
        .unwrap();
    assert_eq!(remove.result, Some(Ok(())));
    let m = &remove.moved;
    assert!(m.huge > 0, "{m:?}");
    assert!(m.compactions > 0 && m.compacted_pages > 0, "{m:?}");
}
