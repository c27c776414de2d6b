//! The installer: what was on the kernel's disk before the machine ran.
//!
//! A real machine boots from a disk someone installed: the files are on it. The installer
//! writes them, before power-on and outside simulated time, onto the storage card the kernel
//! will take as its disk, at the places [`DiskLayout`] gives them — page `p` of file `f`
//! holds [`file_word`]`(f, p, w)` in word `w`, the contents CHK-3 expects of a page nobody has
//! written. The kernel itself never writes the medium except through the card.

use acpi_model::Platform;
use sim_core::SlotId;

use crate::config::OsConfig;
use crate::kernel::OsError;
use crate::mm::vm::{DiskLayout, file_word};

/// The slot whose storage card is to be the kernel's disk: `[os.memory] disk_slot`, else the
/// lowest-numbered slot holding a storage card in a powered I/O subsystem. `None`: there is
/// none. The caller gives the kernel that slot as its `disk_slot` ([`install_disk`] says
/// which), so that the kernel mounts exactly the card that holds its files.
pub fn disk_slot(cfg: &OsConfig, p: &Platform) -> Option<SlotId> {
    let io = p.io();
    io.slots()
        .iter()
        .filter(|s| cfg.memory.disk_slot.is_none_or(|w| s.id.0 == w))
        .filter(|s| {
            io.subsystem(s.subsystem)
                .is_some_and(|x| x.state != sim_core::board::BoardState::Absent)
        })
        .filter(|s| {
            s.card
                .and_then(|d| io.device(d))
                .is_some_and(|d| d.capacity() > 0)
        })
        .map(|s| s.id)
        .min()
}

/// Writes the files of `cfg` onto the storage card [`disk_slot`] chooses (see the module
/// docs) and returns its slot, for the kernel's `disk_slot`; `Ok(None)`: there is no storage
/// card (a kernel with files then creates none, [`OsError::NoDisk`]). Refused when the files
/// do not fit the card's medium.
pub fn install_disk(cfg: &OsConfig, p: &mut Platform) -> Result<Option<SlotId>, OsError> {
    let Some(slot) = disk_slot(cfg, p) else {
        return Ok(None);
    };
    let mc = &cfg.memory;
    let page_bytes = 1u64 << p.geometry().page_shift;
    let io = p.io_mut();
    let Some(dev) = io
        .slot(slot)
        .and_then(|s| s.card)
        .and_then(|d| io.device_mut(d))
    else {
        return Ok(None);
    };
    let too_small = OsError::DiskTooSmall {
        slot: slot.0,
        capacity: dev.capacity(),
        files: mc.files,
        file_pages: mc.file_pages,
    };
    let Some(layout) = DiskLayout::new(page_bytes, mc.files, mc.file_pages, 0, dev.capacity())
    else {
        return Err(too_small);
    };
    let wpp = (page_bytes / 8) as u32;
    let mut page = vec![0u64; wpp as usize];
    for f in 0..mc.files {
        for pg in 0..mc.file_pages {
            for (w, v) in page.iter_mut().enumerate() {
                *v = file_word(f, pg, w as u32);
            }
            if dev.image_media(layout.file_lba(f, pg), &page).is_err() {
                return Err(too_small);
            }
        }
    }
    Ok(Some(slot))
}
