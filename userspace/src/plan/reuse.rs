//! What a publication keeps of the last one to make the next cheaper: each wide IP's part
//! (answer sets, decisions, counter labels, outcomes), reused while nothing it was made
//! from moved. At 10,000 wide IPs a metric change at one site moves the few whose pools
//! hold that site's virtual servers; deciding all of them again is most of a publication.
//!
//! A part is made from the model, the client classes and their ids, and the metrics of the
//! virtual servers in its wide IP's pools (the balancing methods read no other; see
//! `balance::available` and `balance::dynamic`). It is not reused when its wide IP is
//! deferred to a peer (whose decision and its age come from the peer table), or when any
//! of its decisions has dynamic weights (the damper steps them from one publication to
//! the next). The owner clears it when the model changes.
use std::{collections::HashMap, sync::Arc};

use xgslb_common::ClassId;

use crate::{
    balance::classes::ClientClass,
    model::{Metrics, Model, VsId, VsMetrics},
    plan::part::WideIpPart,
};

/// The last publication's parts and what they were made from.
#[derive(Debug, Default)]
pub struct Reuse {
    classes: Vec<ClientClass>,
    class_ids: Vec<ClassId>,
    counted: bool,
    metrics: HashMap<VsId, VsMetrics>,
    /// By wide IP index; empty when nothing can be reused.
    parts: Vec<Arc<WideIpPart>>,
    /// The wide IPs the last publication made anew (the rest it reused).
    made: Vec<usize>,
}

/// What a publication may take from [`Reuse`]: per wide IP, its last part when nothing it
/// was made from moved.
pub struct Reusable<'a> {
    parts: Vec<Arc<WideIpPart>>,
    /// By virtual server id: its metrics moved since the parts were made.
    moved: Vec<bool>,
    model: &'a Model,
}

impl Reuse {
    /// Forgets everything (the model changed: indices may name other things).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The wide IPs (by index) the last publication made anew rather than reused.
    pub fn made(&self) -> &[usize] {
        &self.made
    }

    /// Takes the parts that a publication of `model` under `classes` (with ids
    /// `class_ids`, counted or not) and `metrics` may reuse.
    pub fn take<'a>(
        &mut self,
        model: &'a Model,
        classes: &[ClientClass],
        class_ids: &[ClassId],
        counted: bool,
        metrics: &Metrics,
    ) -> Reusable<'a> {
        let parts = std::mem::take(&mut self.parts);
        let same = parts.len() == model.wideips.len()
            && self.counted == counted
            && self.class_ids == class_ids
            && self.classes == classes;
        let moved = (0..model.vss.len())
            .map(|vs| self.metrics.get(&vs) != metrics.vs.get(&vs))
            .collect();
        Reusable {
            parts: if same { parts } else { Vec::new() },
            moved,
            model,
        }
    }

    /// Keeps a publication's parts and what they were made from.
    pub fn keep(
        &mut self,
        classes: &[ClientClass],
        class_ids: &[ClassId],
        counted: bool,
        metrics: &Metrics,
        parts: Vec<Arc<WideIpPart>>,
        made: Vec<usize>,
    ) {
        if self.classes != classes {
            self.classes = classes.to_vec();
        }
        self.class_ids = class_ids.to_vec();
        self.counted = counted;
        self.metrics.clone_from(&metrics.vs);
        self.parts = parts;
        self.made = made;
    }
}

impl Reusable<'_> {
    /// Wide IP `w`'s last part, if it may be reused.
    pub fn part(&self, w: usize) -> Option<Arc<WideIpPart>> {
        let part = self.parts.get(w)?;
        (part.reusable && !self.pools_moved(w)).then(|| part.clone())
    }

    fn pools_moved(&self, w: usize) -> bool {
        let Some(wideip) = self.model.wideips.get(w) else {
            return true;
        };
        wideip.pools.iter().any(|&p| {
            self.model.pools.get(p).is_none_or(|pool| {
                pool.members
                    .iter()
                    .any(|m| self.moved.get(m.vs).is_none_or(|moved| *moved))
            })
        })
    }
}
