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
use crate::mm::vm::{DiskLayout, file_word};

/// The slot whose storage card the kernel will take as its disk: `[os.memory] disk_slot`,
/// else the lowest-numbered slot holding a storage card in a present I/O subsystem (the
/// kernel's own choice at boot, [`crate::mm::kernel::Mm`]'s `mount_disk`, finds the same
/// card through the driver). `None`: there is none.
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

/// Writes the files of `cfg` onto the disk the kernel will mount (see the module docs).
/// Returns its slot; `Ok(None)`: there is no storage card (a kernel with files then refuses
/// to create them, [`crate::OsError::NoDisk`]). An error: the files do not fit.
pub fn install_disk(cfg: &OsConfig, p: &mut Platform) -> Result<Option<SlotId>, String> {
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
    let layout = DiskLayout::new(page_bytes, mc.files, mc.file_pages, 0, dev.capacity())
        .ok_or_else(|| {
            format!(
                "os.memory.files: {} files of {} pages of {page_bytes} bytes do not fit the {} \
                 sectors of the storage card in slot {}",
                mc.files,
                mc.file_pages,
                dev.capacity(),
                slot.0
            )
        })?;
    let wpp = (page_bytes / 8) as u32;
    let mut page = vec![0u64; wpp as usize];
    for f in 0..mc.files {
        for pg in 0..mc.file_pages {
            for (w, v) in page.iter_mut().enumerate() {
                *v = file_word(f, pg, w as u32);
            }
            dev.image_media(layout.file_lba(f, pg), &page)?;
        }
    }
    Ok(Some(slot))
}
