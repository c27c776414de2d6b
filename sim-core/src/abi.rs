//! The hardware's software interface: the values a kernel or driver programs and reads —
//! PCI configuration registers, the IO SAPIC's register block, the cards' registers and
//! receive records, what a read of nothing returns. They live here, below both sides, so
//! that the models that implement them (`cells`, `io-subsystem`, which re-export them) and
//! the OS that uses them (`os-model`) agree without depending on each other.

/// What a load returns when nothing answers: a halted CPU's access, an unpowered cell's
/// memory, an empty or powered-off slot (all bits set, as a PCI master abort reads).
pub const ALL_ONES: u64 = u64::MAX;

/// PCI configuration space (type 0 header).
pub mod pci {
    /// Standard register offsets.
    pub mod reg {
        /// Vendor id (low 16) and device id (high 16).
        pub const ID: u16 = 0x00;
        /// Command (low 16) and status (high 16).
        pub const COMMAND: u16 = 0x04;
        /// Revision (low 8) and class code (high 24).
        pub const CLASS: u16 = 0x08;
        /// Cache line size, latency timer, header type, BIST.
        pub const HEADER: u16 = 0x0C;
        /// First BAR; BAR n is at `BAR0 + 4n`.
        pub const BAR0: u16 = 0x10;
        /// Subsystem vendor/device ids.
        pub const SUBSYSTEM: u16 = 0x2C;
        /// Interrupt line (low 8), pin (next 8).
        pub const INTERRUPT: u16 = 0x3C;
    }

    /// Command register bits.
    pub mod cmd {
        /// I/O space decode.
        pub const IO: u32 = 1 << 0;
        /// Memory space decode.
        pub const MEMORY: u32 = 1 << 1;
        /// Bus master (DMA) enable.
        pub const BUS_MASTER: u32 = 1 << 2;
        /// INTx disable.
        pub const INTX_DISABLE: u32 = 1 << 10;
    }
}

/// The IO SAPIC's memory-mapped registers (`IOREGSEL`, `IOWIN`, `EOI`) and the low dword of
/// a redirection entry.
pub mod sapic {
    /// `IOREGSEL` offset.
    pub const IOREGSEL: u64 = 0x00;
    /// `IOWIN` offset.
    pub const IOWIN: u64 = 0x10;
    /// `EOI` offset.
    pub const EOI: u64 = 0x40;
    /// Bytes of the register block.
    pub const REGISTER_BYTES: u64 = 0x1000;

    /// Low-dword bits.
    pub mod rte {
        /// Level (1) or edge (0) triggered.
        pub const LEVEL: u32 = 1 << 15;
        /// Remote IRR: a level interrupt is in service.
        pub const REMOTE_IRR: u32 = 1 << 14;
        /// Masked.
        pub const MASK: u32 = 1 << 16;
    }
}

/// The cards' registers and the receive records they write by DMA.
pub mod device {
    /// Bytes of one receive record.
    pub const RECORD_BYTES: u64 = 128;
    /// Words of one receive record.
    pub const RECORD_WORDS: usize = 16;
    /// First word of every record: this magic in the high 32 bits, the sequence number below.
    pub const RECORD_MAGIC: u64 = 0xCE11_5EED << 32;

    /// Register offsets.
    pub mod regs {
        /// Control.
        pub const CTRL: u64 = 0x00;
        /// Receive ring base.
        pub const RING_BASE: u64 = 0x08;
        /// Receive ring size.
        pub const RING_SIZE: u64 = 0x10;
        /// Bytes produced.
        pub const HEAD: u64 = 0x18;
        /// Bytes consumed.
        pub const TAIL: u64 = 0x20;
        /// Status (write 1 to clear).
        pub const STATUS: u64 = 0x28;
        /// Record period.
        pub const PERIOD: u64 = 0x30;
        /// Transmit buffer.
        pub const TX_ADDR: u64 = 0x38;
        /// Transmit length.
        pub const TX_LEN: u64 = 0x40;
        /// Transmit doorbell.
        pub const TX_GO: u64 = 0x48;
        /// Transmit checksum.
        pub const TX_SUM: u64 = 0x50;
        /// Serial number.
        pub const SERIAL: u64 = 0x58;
        /// `CTRL` bit: produce records.
        pub const CTRL_RUN: u64 = 1;
        /// `CTRL` bit: raise the interrupt line.
        pub const CTRL_IRQ_EN: u64 = 2;
        /// `STATUS` bit: records available.
        pub const STATUS_RX: u64 = 1;
        /// `STATUS` bit: transmit done.
        pub const STATUS_TX_DONE: u64 = 2;
        /// `STATUS` bit: a DMA failed (the address was not memory).
        pub const STATUS_DMA_ERROR: u64 = 4;
        /// Block engine (storage cards): first sector of the next command.
        pub const BLK_LBA: u64 = 0x60;
        /// Block engine: physical address of the next command's buffer.
        pub const BLK_ADDR: u64 = 0x68;
        /// Block engine: bytes the next command moves (a multiple of
        /// [`super::SECTOR_BYTES`], at most [`super::BLK_MAX_BYTES`]).
        pub const BLK_LEN: u64 = 0x70;
        /// Block engine: the driver's tag for the next command (returned on completion).
        pub const BLK_TAG: u64 = 0x78;
        /// Block engine doorbell: writing [`BLK_READ`] or [`BLK_WRITE`] queues the command
        /// the four registers above describe.
        pub const BLK_CMD: u64 = 0x80;
        /// Block engine: reading it takes the oldest completion ([`super::blk_done`]), 0 when
        /// none is left.
        pub const BLK_DONE: u64 = 0x88;
        /// Block engine: sectors on the medium (read-only; 0 on a card without one).
        pub const BLK_CAPACITY: u64 = 0x90;
        /// Block engine: nanoseconds from a command's doorbell to its completion at the least
        /// (transfers follow one another at the medium's bandwidth; completions come in order).
        pub const BLK_LATENCY: u64 = 0x98;
        /// `BLK_CMD`: medium to memory (the card writes the buffer by DMA).
        pub const BLK_READ: u64 = 1;
        /// `BLK_CMD`: memory to medium (the card reads the buffer by DMA).
        pub const BLK_WRITE: u64 = 2;
        /// `BLK_CMD`: abort every command queued: each completes at once, failed, and moves
        /// nothing (what a driver does to a command that timed out, as a controller reset).
        pub const BLK_ABORT: u64 = 3;
        /// `STATUS` bit: a block command completed (take them from `BLK_DONE`).
        pub const STATUS_BLK_DONE: u64 = 8;
    }

    /// Bytes of one sector of a storage card's medium.
    pub const SECTOR_BYTES: u64 = 512;
    /// Most bytes one block command moves.
    pub const BLK_MAX_BYTES: u64 = 1 << 20;
    /// Commands a storage card holds queued and not yet finished; one more is refused
    /// (completed at once with [`BLK_FAILED`]).
    pub const BLK_QUEUE: usize = 64;
    /// `BLK_DONE` bit: a completion (the tag is in the low 32 bits).
    pub const BLK_VALID: u64 = 1 << 63;
    /// `BLK_DONE` bit: the command failed (bad range or length, queue full, DMA refused or
    /// bus mastering off); nothing of it was done, or the buffer holds part of it.
    pub const BLK_FAILED: u64 = 1 << 62;

    /// The completion word of the command tagged `tag`.
    pub const fn blk_done(tag: u32, failed: bool) -> u64 {
        BLK_VALID | if failed { BLK_FAILED } else { 0 } | tag as u64
    }

    /// Word `w` (counted from the medium's start) of a storage card with `serial` that was
    /// never written: what a new medium holds.
    pub fn media_word(serial: u64, w: u64) -> u64 {
        (w ^ serial.rotate_left(17)).wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 0x5EC7_0000_0000_0000
    }

    /// Word `i` of record `seq` of the card with `serial`.
    pub fn record_word(serial: u64, seq: u64, i: usize) -> u64 {
        match i {
            0 => RECORD_MAGIC | (seq & 0xFFFF_FFFF),
            1 => serial,
            _ => {
                seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .rotate_left(i as u32)
                    ^ serial
            }
        }
    }
}
