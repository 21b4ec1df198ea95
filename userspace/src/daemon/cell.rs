//! A value one writer replaces whole and many readers take a reference-counted copy of (the
//! published snapshot, the ingest's VS index and probe targets): readers never block, not
//! even on the writer (an RCU-style pointer swap, `arc-swap`), and never see half an update.
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The current `Arc<T>`, replaced whole.
pub struct SwapCell<T>(ArcSwap<T>);

impl<T: Default> Default for SwapCell<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> SwapCell<T> {
    pub fn new(value: T) -> Self {
        Self(ArcSwap::from_pointee(value))
    }

    /// A cell holding `value`, shared with whoever else holds it.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self(ArcSwap::new(value))
    }

    /// The value now.
    pub fn load(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Puts `value` in place of the current one.
    pub fn store(&self, value: Arc<T>) {
        self.0.store(value);
    }
}
