"""A Modbus TCP server nobody here wrote (pymodbus), serving the values that
tests/it/interop_pymodbus.rs expects, laid out as tests/fixtures/modbus.toml maps
them (unit 1). Usage: python3 pymodbus_server.py PORT"""
import asyncio
import math
import struct
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import StartAsyncTcpServer


def words(fmt, value):
    raw = struct.pack(fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def swap_bytes(ws):
    return [((w & 0xFF) << 8) | (w >> 8) for w in ws]


hr = [0] * 64
hr[0:1] = words(">H", 65000)
hr[1:2] = words(">h", -1234)
hr[2:4] = list(reversed(words(">I", 4_000_000_000)))  # CDAB: word swap
hr[4:6] = swap_bytes(words(">i", -2_000_000_000))  # BADC: byte swap
hr[6:8] = list(reversed(swap_bytes(words(">f", -273.15))))  # DCBA: little-endian
hr[8:12] = words(">d", math.e)
hr[12:16] = words(">Q", 9_007_199_254_740_992)
hr[16:20] = words(">q", -9_007_199_254_740_992)
hr[20] = 0b1000
ir = [123] + [0] * 15
co = [True] + [False] * 15

# Blocks start at 1: pymodbus adds 1 to wire addresses unless zero_mode is set.
unit = ModbusSlaveContext(
    hr=ModbusSequentialDataBlock(1, hr),
    ir=ModbusSequentialDataBlock(1, ir),
    co=ModbusSequentialDataBlock(1, co),
    di=ModbusSequentialDataBlock(1, [False] * 16),
)
context = ModbusServerContext(slaves={1: unit}, single=False)
asyncio.run(StartAsyncTcpServer(context=context, address=("127.0.0.1", int(sys.argv[1]))))
