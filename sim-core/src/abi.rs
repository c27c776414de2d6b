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
