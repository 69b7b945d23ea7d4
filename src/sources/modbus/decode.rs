//! Registers → values: pure functions with golden tests for every type and
//! byte order.

use crate::config::modbus::{ByteOrder, DataType};

/// Reorders the registers of one value into big-endian bytes.
pub fn to_bytes(regs: &[u16], order: ByteOrder) -> Vec<u8> {
    let swap_bytes = matches!(order, ByteOrder::BADC | ByteOrder::DCBA);
    let reverse_words = matches!(order, ByteOrder::CDAB | ByteOrder::DCBA) && regs.len() > 1;
    let mut words: Vec<u16> =
        regs.iter().map(|w| if swap_bytes { w.swap_bytes() } else { *w }).collect();
    if reverse_words {
        words.reverse();
    }
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// Decodes one value from its registers (exactly `data_type.registers()` of them).
/// Returns `None` if the slice is too short. Floats may be NaN or infinite;
/// the caller decides what that means.
pub fn decode(regs: &[u16], data_type: DataType, order: ByteOrder) -> Option<f64> {
    let n = data_type.registers() as usize;
    let regs = regs.get(..n)?;
    let b = to_bytes(regs, order);
    Some(match data_type {
        DataType::Bool => f64::from(u8::from(b[0] != 0 || b[1] != 0)),
        DataType::U16 => f64::from(u16::from_be_bytes([b[0], b[1]])),
        DataType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
        DataType::U32 => f64::from(u32::from_be_bytes(b[..4].try_into().ok()?)),
        DataType::I32 => f64::from(i32::from_be_bytes(b[..4].try_into().ok()?)),
        DataType::F32 => f64::from(f32::from_be_bytes(b[..4].try_into().ok()?)),
        DataType::U64 => u64::from_be_bytes(b[..8].try_into().ok()?) as f64,
        DataType::I64 => i64::from_be_bytes(b[..8].try_into().ok()?) as f64,
        DataType::F64 => f64::from_be_bytes(b[..8].try_into().ok()?),
    })
}

/// One bit of a register as 0.0 or 1.0.
pub fn bit(reg: u16, bit: u8) -> f64 {
    f64::from((reg >> (bit & 15)) & 1)
}

/// Encodes a value into registers in a byte order (the inverse of [`decode`]);
/// used by the embedded test/demo server and the golden tests.
pub fn encode(value: f64, data_type: DataType, order: ByteOrder) -> Vec<u16> {
    let be: Vec<u8> = match data_type {
        DataType::Bool => (u16::from(value != 0.0)).to_be_bytes().to_vec(),
        DataType::U16 => (value as u16).to_be_bytes().to_vec(),
        DataType::I16 => (value as i16).to_be_bytes().to_vec(),
        DataType::U32 => (value as u32).to_be_bytes().to_vec(),
        DataType::I32 => (value as i32).to_be_bytes().to_vec(),
        DataType::F32 => (value as f32).to_be_bytes().to_vec(),
        DataType::U64 => (value as u64).to_be_bytes().to_vec(),
        DataType::I64 => (value as i64).to_be_bytes().to_vec(),
        DataType::F64 => value.to_be_bytes().to_vec(),
    };
    let words: Vec<u16> = be.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    // to_bytes is an involution on word/byte swaps, so applying it again inverts it.
    to_bytes(&words, order).chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteOrder::*;
    use DataType::*;

    #[test]
    fn golden_32_bit_orders() {
        // 0x41 0x20 0x00 0x00 is 10.0f32; bytes A=0x41 B=0x20 C=0x00 D=0x00.
        assert_eq!(decode(&[0x4120, 0x0000], F32, ABCD), Some(10.0));
        assert_eq!(decode(&[0x0000, 0x4120], F32, CDAB), Some(10.0));
        assert_eq!(decode(&[0x2041, 0x0000], F32, BADC), Some(10.0));
        assert_eq!(decode(&[0x0000, 0x2041], F32, DCBA), Some(10.0));
        // 0x12345678 under each order.
        assert_eq!(decode(&[0x1234, 0x5678], U32, ABCD), Some(305_419_896.0));
        assert_eq!(decode(&[0x5678, 0x1234], U32, CDAB), Some(305_419_896.0));
        assert_eq!(decode(&[0x3412, 0x7856], U32, BADC), Some(305_419_896.0));
        assert_eq!(decode(&[0x7856, 0x3412], U32, DCBA), Some(305_419_896.0));
        assert_eq!(decode(&[0xFFFF, 0xFFFE], I32, ABCD), Some(-2.0));
        assert_eq!(decode(&[0xFFFE, 0xFFFF], I32, CDAB), Some(-2.0));
    }

    #[test]
    fn golden_16_bit() {
        assert_eq!(decode(&[0xFFFF], U16, ABCD), Some(65_535.0));
        assert_eq!(decode(&[0xFFFF], I16, ABCD), Some(-1.0));
        assert_eq!(decode(&[0x8000], I16, ABCD), Some(-32_768.0));
        assert_eq!(decode(&[0x0100], U16, BADC), Some(1.0));
        assert_eq!(decode(&[0x0100], U16, DCBA), Some(1.0));
        assert_eq!(
            decode(&[0x0001], U16, CDAB),
            Some(1.0),
            "a word swap means nothing for one word"
        );
        assert_eq!(bit(0b1000, 3), 1.0);
        assert_eq!(bit(0b1000, 2), 0.0);
    }

    #[test]
    fn golden_64_bit() {
        // 1.5f64 = 0x3FF8_0000_0000_0000
        assert_eq!(decode(&[0x3FF8, 0, 0, 0], F64, ABCD), Some(1.5));
        assert_eq!(decode(&[0, 0, 0, 0x3FF8], F64, CDAB), Some(1.5));
        assert_eq!(decode(&[0xF83F, 0, 0, 0], F64, BADC), Some(1.5));
        assert_eq!(decode(&[0, 0, 0, 0xF83F], F64, DCBA), Some(1.5));
        assert_eq!(decode(&[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], I64, ABCD), Some(-1.0));
        assert_eq!(decode(&[0x0000, 0x0001, 0x0000, 0x0000], U64, ABCD), Some(4_294_967_296.0));
        assert_eq!(decode(&[0x0000, 0x0000, 0x0001, 0x0000], U64, CDAB), Some(4_294_967_296.0));
    }

    #[test]
    fn nan_and_infinity_come_through_for_the_caller_to_judge() {
        assert!(decode(&[0x7FC0, 0x0000], F32, ABCD).unwrap().is_nan());
        assert_eq!(decode(&[0x7F80, 0x0000], F32, ABCD), Some(f64::INFINITY));
        assert_eq!(decode(&[0xFF80, 0x0000], F32, ABCD), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn too_few_registers_is_none() {
        assert_eq!(decode(&[0x4120], F32, ABCD), None);
        assert_eq!(decode(&[], U16, ABCD), None);
    }

    #[test]
    fn encode_inverts_decode_for_every_type_and_order() {
        for order in ByteOrder::ALL {
            for (t, v) in [
                (U16, 51_234.0),
                (I16, -1234.0),
                (U32, 4_000_000_000.0),
                (I32, -2_000_000_000.0),
                (F32, -273.15f32 as f64),
                (U64, 9_007_199_254_740_993f64),
                (I64, -9_007_199_254_740_000.0),
                (F64, std::f64::consts::PI),
                (Bool, 1.0),
            ] {
                let regs = encode(v, t, order);
                assert_eq!(regs.len(), t.registers() as usize);
                assert_eq!(decode(&regs, t, order), Some(v), "{t:?} {order:?}");
            }
        }
    }
}
