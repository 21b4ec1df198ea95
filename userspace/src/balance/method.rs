//! What a pool method sees and what it yields: the contract between the dispatcher
//! (`methods`) and the method functions (`methods`, `dynamic`), apart so that neither
//! depends on the other for it.
use std::net::IpAddr;

use super::trace::Next;
use crate::model::{ClientContext, Metrics, Model, Pool, PoolMember, VsId};

/// What a method sees: the pool, its *available* members in pool order, metrics and client.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub model: &'a Model,
    pub pool: &'a Pool,
    /// The pool's members that passed [`super::available`], in pool order.
    pub members: &'a [PoolMember],
    pub metrics: &'a Metrics,
    pub client: &'a ClientContext,
}

/// What a method yields.
#[derive(Clone, Debug, PartialEq)]
pub enum MethodResult {
    /// Answer from these members with these weights (each >= 1).
    Members {
        members: Vec<(VsId, u32)>,
        persist: bool,
    },
    /// Nothing: the next tier is tried. Says why.
    Next(Next),
    /// Terminal outcomes of the pool.
    FallbackIp(IpAddr),
    Drop,
    ReturnToDns,
}

impl MethodResult {
    pub(super) fn members(members: Vec<(VsId, u32)>) -> Self {
        MethodResult::Members {
            members,
            persist: false,
        }
    }
}
