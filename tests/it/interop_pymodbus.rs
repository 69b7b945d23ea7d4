//! Interop against a Modbus server nobody here wrote: pymodbus (PyPI), started
//! by `.ci/run` with tests/interop/pymodbus_server.py and passed in
//! `HUMS_TEST_PYMODBUS=host:port`. hums reads known values of every type.

use crate::common;

#[tokio::test]
async fn reads_every_type_and_byte_order_from_pymodbus() {
    let addr = std::env::var("HUMS_TEST_PYMODBUS")
        .expect("HUMS_TEST_PYMODBUS=host:port must name a running pymodbus server (see .ci/run)");
    let got = common::read_meter_once(|l| l.address = addr).await;
    common::assert_values(&got);
}
