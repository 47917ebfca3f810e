//! What an image source that decodes on demand (a streamed folder, tar shards) does with an image
//! that fails while training runs: under `fail` it keeps the error for the learner to stop on
//! (naming the file), under `skip` it counts and warns; either way the view gets a blank image,
//! since a loader thread cannot return an error.
use crate::error::{BadInputPolicy, DataError};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub struct DecodeErrors {
    policy: BadInputPolicy,
    kept: Mutex<Vec<DataError>>,
    blanked: AtomicUsize,
}

impl DecodeErrors {
    pub fn new(policy: BadInputPolicy) -> Self {
        DecodeErrors {
            policy,
            kept: Mutex::new(Vec::new()),
            blanked: AtomicUsize::new(0),
        }
    }

    /// The decoded planes, or — after recording `e` as the policy says — `len` zero bytes.
    pub fn planes_or_blank(
        &self,
        decoded: Result<Vec<u8>, DataError>,
        len: usize,
    ) -> Cow<'static, [u8]> {
        match decoded {
            Ok(p) => Cow::Owned(p),
            Err(e) => {
                match self.policy {
                    BadInputPolicy::Fail => {
                        if let Ok(mut kept) = self.kept.lock() {
                            kept.push(e);
                        }
                    }
                    BadInputPolicy::Skip => {
                        self.blanked.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("{e}; the image is blank in this view");
                    }
                }
                Cow::Owned(vec![0; len])
            }
        }
    }

    /// The errors kept since the last call.
    pub fn take(&self) -> Vec<DataError> {
        self.kept
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    /// Images blanked under the skip policy so far.
    pub fn blanked(&self) -> usize {
        self.blanked.load(Ordering::Relaxed)
    }
}
