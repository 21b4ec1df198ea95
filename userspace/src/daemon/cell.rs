//! A value one writer replaces whole and many readers take a reference-counted copy of (the
//! published snapshot, the ingest's VS index and probe targets): readers never block on
//! anything but the pointer swap, and never see half an update.
use std::sync::{Arc, RwLock};

/// The current `Arc<T>`, replaced whole.
#[derive(Default)]
pub struct SwapCell<T>(RwLock<Arc<T>>);

impl<T> SwapCell<T> {
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    /// The value now. A writer that panicked mid-swap left a whole value either way, so a
    /// poisoned lock is read through.
    pub fn load(&self) -> Arc<T> {
        match self.0.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `value` in place of the current one.
    pub fn store(&self, value: Arc<T>) {
        match self.0.write() {
            Ok(mut v) => *v = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}
