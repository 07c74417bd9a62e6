//! Socket.IO decoding: any bytes as a packet's text, the pieces after each
//! 0xff byte (never in UTF-8) as its binary attachments. Must never panic;
//! whatever decodes must encode, and decode back to the same packet.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sockgate_engine::sio::{self, Decoded, Packet};

const MAX_ATTACHMENTS: usize = 8;

/// Decodes `text` and feeds it `buffers`; `None` if it still waits for more.
fn reassemble(
    text: &str,
    buffers: impl IntoIterator<Item = Bytes>,
) -> Result<Option<Packet>, sio::Error> {
    let mut buffers = buffers.into_iter();
    let mut decoded = sio::decode(text, MAX_ATTACHMENTS)?;
    loop {
        match decoded {
            Decoded::Complete(packet) => return Ok(Some(packet)),
            Decoded::Partial(partial) => match buffers.next() {
                Some(buffer) => decoded = partial.push(buffer)?,
                None => return Ok(None),
            },
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|byte| *byte == 0xff);
    let Some(Ok(text)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    let buffers = parts.map(Bytes::copy_from_slice);
    let Ok(Some(packet)) = reassemble(text, buffers) else {
        return;
    };
    let encoded = sio::encode(&packet).expect("a decoded packet encodes");
    let again = reassemble(&encoded.text, encoded.attachments).expect("encoded packet decodes");
    assert_eq!(again, Some(packet));
});
