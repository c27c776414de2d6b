//! The kernel's disk is a storage card in a slot: files and swap pages move by the card's DMA
//! through its block engine, the medium holds them, and the card cannot be taken away while
//! it holds anything (a disk pulled out fails what it had).

use acpi_model::NotifyCode;
use os_model::config::MemConfig;
use os_model::mm::vm::{FsKind, Pte};
use os_model::pcihp::PciOpKind;
use os_model::{OsConfig, Trigger};
use sim_core::abi::device::media_word;
use sim_core::{ByteSize, SimDuration, SlotId};

use crate::common::{Sim, mem_clean, mem_settle as settle, ms, small_machine, with_disk};

fn workload(files: u32) -> OsConfig {
    OsConfig {
        tasks_per_cpu: 2,
        memory: MemConfig {
            block_size: ByteSize(4 << 20),
            anon_pages: 48,
            files,
            file_pages: 24,
            fs: vec![FsKind::Ext3, FsKind::Ext2, FsKind::Tmpfs],
            // Most accesses go to each area's first quarter: the rest turns cold.
            hot_fraction: 0.95,
            slab_pages: 4,
            ..MemConfig::default()
        },
        ..OsConfig::default()
    }
}

/// The words the disk's card holds from sector `lba`, one page of them.
fn medium(s: &Sim, lba: u64) -> (Vec<u64>, u64) {
    let vm = s.os.vm().unwrap();
    let slot = vm.disk.as_ref().unwrap().slot;
    let id = s.p.io().slot(slot).and_then(|x| x.card).unwrap();
    let dev = s.p.io().device(id).unwrap();
    let mut buf = vec![0u64; vm.wpp as usize];
    dev.peek_media(lba, &mut buf);
    (buf, dev.serial)
}

#[test]
fn swapped_pages_go_to_the_disk_cards_medium_by_its_dma_and_file_pages_come_from_it() {
    let mut s = Sim::new(small_machine(), Default::default(), &workload(6), &[], 3);
    s.run_to(ms(4));
    let disk =
        s.os.vm()
            .unwrap()
            .disk
            .clone()
            .expect("the kernel mounted its disk");
    assert_eq!(
        disk.slot,
        SlotId(1),
        "the storage card in subsystem 0, slot 0"
    );
    // File pages were read from the installed image by the card.
    let vm = s.os.vm().unwrap();
    assert!(vm.stats.file_reads > 0 && vm.stats.disk_commands >= vm.stats.file_reads);
    assert!(s.p.io().stats().blk_done > 0);
    // Block 8 (node 1's first, full of its tasks' pages) goes offline: its cold pages are
    // swapped out, each read from its frame by the card's DMA when the card gets to it.
    s.os.mem_request(s.now, 8, false).unwrap();
    settle(&mut s, ms(12));
    let r = s.os.mem_hotplug().done().last().cloned().unwrap();
    assert_eq!(r.result, Some(Ok(())), "{r:?}");
    assert!(r.moved.swapped > 0, "{:?}", r.moved);
    // Every page still in swap is on the medium: written, not the factory contents.
    let vm = s.os.vm().unwrap();
    let layout = vm.disk.as_ref().unwrap().layout;
    let slots: Vec<u32> = vm
        .spaces
        .iter()
        .flat_map(|sp| sp.ptes.iter())
        .filter_map(|p| match p {
            Pte::Swap { slot } => Some(*slot),
            Pte::None | Pte::Present { .. } | Pte::Migration { .. } | Pte::FileHole => None,
        })
        .collect();
    assert!(!slots.is_empty(), "some pages are still in swap");
    for slot in slots {
        let lba = layout.swap_lba(slot);
        let (words, serial) = medium(&s, lba);
        let factory =
            (0..words.len() as u64).all(|w| words[w as usize] == media_word(serial, lba * 64 + w));
        assert!(
            !factory,
            "swap slot {slot} (sector {lba}) was never written"
        );
    }
    // CHK-3 compared every page, those on the medium included, with what the tasks stored.
    s.run_to(s.now + SimDuration::from_millis(1));
    mem_clean(&mut s).unwrap();
}

#[test]
fn the_disk_is_not_taken_away_while_it_holds_files_and_an_empty_one_is_swapped_off() {
    let mut s = Sim::new(small_machine(), Default::default(), &workload(4), &[], 5);
    s.run_to(ms(2));
    let before = s.os.pci_hotplug().slots[0].clone();
    for trigger in [Trigger::User, Trigger::AcpiEject] {
        let e =
            s.os.pci_request(s.now, 1, PciOpKind::Disable, trigger)
                .unwrap_err();
        assert_eq!(e.errno(), "EBUSY");
        assert!(
            e.to_string().contains("the kernel's disk, in use (4 files"),
            "{e}"
        );
    }
    // Nor its I/O subsystem: refused before any of its devices stops.
    let e =
        s.os.pci_subsystem_request(s.now, "\\_SB_.IO00", false, true, Trigger::User)
            .unwrap_err();
    assert_eq!(e.errno(), "EBUSY", "{e}");
    s.run_to(s.now + SimDuration::from_millis(1));
    let after = &s.os.pci_hotplug().slots[0];
    assert!(after.enabled && after.card == before.card && after.bars == before.bars);
    assert!(s.os.vm().unwrap().disk.is_some());
    mem_clean(&mut s).unwrap();

    // A kernel without files whose swap is empty lets its disk go: swap off, then the slot.
    let mut s = Sim::new(
        small_machine(),
        with_disk(Default::default(), 40_000),
        &workload(0),
        &[],
        5,
    );
    s.run_to(ms(2));
    assert_eq!(s.os.vm().unwrap().swap.used(), 0);
    assert!(s.os.vm().unwrap().swap.capacity() > 0);
    s.os.pci_request(s.now, 1, PciOpKind::Disable, Trigger::User)
        .unwrap();
    s.run_to(s.now + SimDuration::from_millis(2));
    assert!(!s.os.pci_hotplug().slots[0].enabled);
    let vm = s.os.vm().unwrap();
    assert!(vm.disk.is_none() && vm.swap.capacity() == 0);
    mem_clean(&mut s).unwrap();
}

#[test]
fn a_disk_pulled_out_fails_its_transfers_and_leaves_no_task_waiting_for_ever() {
    // A slow disk, so that transfers are in flight when it goes.
    let io = with_disk(Default::default(), 300_000);
    let mut s = Sim::new(small_machine(), io, &workload(6), &[], 7);
    s.run_to(ms(2));
    assert!(!s.os.vm().unwrap().disk.as_ref().unwrap().gone);
    let t = s.now;
    let path = s.os.pci_hotplug().slots[0].path.clone();
    s.p.remove_card(t, SlotId(1), &mut s.probe).unwrap();
    s.p.notify(
        t + SimDuration::from_micros(50),
        &path,
        NotifyCode::BusCheck,
        &mut s.probe,
    )
    .unwrap();
    s.run_to(t + SimDuration::from_millis(5));
    let vm = s.os.vm().unwrap();
    assert!(vm.disk.as_ref().is_none_or(|d| d.gone));
    assert!(vm.stats.io_errors > 0, "{:?}", vm.stats);
    // Every task that waited for a page got it back (its data lost: CHK-3 may say so), none
    // is left blocked with nothing to wake it.
    s.audit();
    assert_eq!(s.count("CHK-4"), 0, "{}", s.violations());
}

#[test]
fn a_disk_that_drops_its_writes_loses_swapped_pages_and_chk3_finds_the_loss_on_its_medium() {
    // The card acknowledges every write and stores none (the hardware defect
    // block_write_lost): the pages swapped out are not on the medium. The kernel cannot tell;
    // CHK-3 reads the medium and can.
    let mut s = Sim::new(small_machine(), Default::default(), &workload(6), &[], 3);
    s.p.io_mut()
        .inject_defect(acpi_model::hw::IoDefect::BlockWriteLost);
    s.run_to(ms(4));
    s.os.mem_request(s.now, 8, false).unwrap();
    settle(&mut s, ms(12));
    let r = s.os.mem_hotplug().done().last().cloned().unwrap();
    assert!(r.moved.swapped > 0, "{:?}", r.moved);
    // Audits sweep every page in turn.
    for _ in 0..40 {
        s.audit();
    }
    assert!(s.count("CHK-3") > 0, "{}", s.violations());
    assert!(
        s.violations().contains("on the disk)"),
        "{}",
        s.violations()
    );
}

#[test]
fn transfers_a_card_loses_behind_the_kernels_back_time_out_and_nothing_waits_for_ever() {
    // The disk's slot loses power by hand (not through the kernel): the card resets and its
    // queued commands are gone, with no completion and no notification. After disk_timeout
    // the kernel looks at the card, finds nothing answering and fails every transfer.
    let mut cfg = workload(6);
    cfg.memory.disk_timeout = SimDuration::from_millis(1);
    let io = with_disk(Default::default(), 300_000);
    let mut s = Sim::new(small_machine(), io, &cfg, &[], 7);
    s.run_to(ms(2));
    assert!(s.os.vm().unwrap().transfers_in_flight() > 0);
    let t = s.now;
    s.p.set_slot_power(t, SlotId(1), false, &mut s.probe)
        .unwrap();
    s.run_to(t + SimDuration::from_millis(4));
    let vm = s.os.vm().unwrap();
    assert!(vm.disk.as_ref().is_some_and(|d| d.gone));
    assert!(
        vm.stats.io_errors > 0 && vm.transfers_in_flight() == 0,
        "{:?}",
        vm.stats
    );
    s.audit();
    assert_eq!(s.count("CHK-4"), 0, "{}", s.violations());
}

#[test]
fn a_transfer_that_times_out_on_a_live_card_is_aborted_and_never_lands_later() {
    // The card answers but takes 3 ms per command; the kernel waits 1 ms. Each timeout
    // aborts what the card holds (BLK_CMD = ABORT): every command completes failed, nothing
    // moves. Before, the kernel failed the transfer and left the command queued: it landed
    // later, by DMA, in a frame the kernel had already mapped or freed.
    let mut cfg = workload(6);
    cfg.memory.disk_timeout = SimDuration::from_millis(1);
    let io = with_disk(Default::default(), 3_000_000);
    let mut s = Sim::new(small_machine(), io, &cfg, &[], 7);
    s.run_to(ms(8));
    let vm = s.os.vm().unwrap();
    assert!(vm.disk.as_ref().is_some_and(|d| !d.gone));
    assert!(vm.stats.disk_timeouts > 0, "{:?}", vm.stats);
    let hw = s.p.io().stats();
    assert!(hw.blk_failed > 0, "{hw:?}");
    assert_eq!(hw.blk_done, 0, "a command given up on moved data: {hw:?}");
    s.audit();
    assert_eq!(s.count("CHK-1") + s.count("CHK-2"), 0, "{}", s.violations());
}
