//! Routing: which trunk carries a number.
//!
//! A trunk's `routes` list number types (`fixed`, `mobile`, `unknown`) and E.164 prefixes
//! (`+39`); an empty list carries everything. The most specific match wins (the longest
//! prefix, then a type match, then catch-all trunks); among equally specific trunks the
//! lowest `priority` that has capacity now is used, so that traffic spills to the next
//! priority when the first is full; within one priority, `weight` shares the calls.

use super::numbers::NumberType;
use super::trunk_keys::RouteKey;
use smallvec::SmallVec;

/// What routing needs to know of a trunk at this instant.
#[derive(Debug, Clone)]
pub struct TrunkView<'a> {
    /// The trunk's routes.
    pub routes: &'a [RouteKey],
    /// Its priority (lower first).
    pub priority: u32,
    /// Its weight (share within a priority).
    pub weight: u32,
    /// Attempts it has admitted so far.
    pub admitted: u64,
    /// Up (pings) and not excluded for this attempt.
    pub eligible: bool,
    /// A channel and a CPS token are free now.
    pub available: bool,
}

/// The routing decision for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Use the trunk at this index.
    Trunk(usize),
    /// Some trunk could carry it, but none has capacity now.
    Wait,
    /// No trunk carries this number (or every one that does was excluded or is down).
    NoRoute,
}

/// How specifically a trunk's routes match a number; `None` if they do not.
pub fn specificity(routes: &[RouteKey], e164: &str, ty: NumberType) -> Option<usize> {
    if routes.is_empty() {
        return Some(0);
    }
    routes.iter().filter_map(|r| r.specificity(e164, ty)).max()
}

/// Picks a trunk for `e164` of type `ty`.
pub fn route(trunks: &[TrunkView<'_>], e164: &str, ty: NumberType) -> Route {
    // Inline for the usual handful of trunks: this runs once per call placed.
    let mut matched: SmallVec<[(usize, usize); 8]> = trunks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.eligible)
        .filter_map(|(i, t)| specificity(t.routes, e164, ty).map(|s| (i, s)))
        .collect();
    if matched.is_empty() {
        return Route::NoRoute;
    }
    // Most specific first, then by priority.
    matched.sort_by_key(|&(i, s)| (std::cmp::Reverse(s), trunks[i].priority, i));
    let top = matched[0].1;
    let mut best: Option<(usize, f64, u32)> = None;
    for &(i, s) in matched.iter().filter(|&&(_, s)| s == top) {
        let _ = s;
        let t = &trunks[i];
        if !t.available {
            continue;
        }
        // Smooth weighted share: the trunk furthest below its share goes next.
        let load = t.admitted as f64 / f64::from(t.weight.max(1));
        match best {
            Some((_, bl, bp)) if (t.priority, load) >= (bp, bl) => {}
            _ => best = Some((i, load, t.priority)),
        }
        // Lower priority only when every higher one is full: keep the first priority.
        if let Some((_, _, bp)) = best {
            if t.priority > bp {
                break;
            }
        }
    }
    match best {
        Some((i, _, _)) => Route::Trunk(i),
        None => Route::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(words: &[&str]) -> Vec<RouteKey> {
        words.iter().map(|w| RouteKey::parse(w).unwrap()).collect()
    }

    fn v(routes: &[RouteKey], prio: u32, w: u32, admitted: u64, avail: bool) -> TrunkView<'_> {
        TrunkView {
            routes,
            priority: prio,
            weight: w,
            admitted,
            eligible: true,
            available: avail,
        }
    }

    #[test]
    fn by_type_and_prefix() {
        let fixed = keys(&["fixed"]);
        let mobile = keys(&["mobile"]);
        let uk = keys(&["+44"]);
        let all: Vec<RouteKey> = vec![];
        let ts = [
            v(&fixed, 0, 1, 0, true),
            v(&mobile, 0, 1, 0, true),
            v(&uk, 0, 1, 0, true),
            v(&all, 9, 1, 0, true),
        ];
        assert_eq!(
            route(&ts, "+390771286891", NumberType::Fixed),
            Route::Trunk(0)
        );
        assert_eq!(
            route(&ts, "+393471234567", NumberType::Mobile),
            Route::Trunk(1)
        );
        assert_eq!(
            route(&ts, "+442079460018", NumberType::Fixed),
            Route::Trunk(2)
        );
        assert_eq!(route(&ts, "+390000", NumberType::Unknown), Route::Trunk(3));
    }

    #[test]
    fn priority_spills_over_and_weight_shares() {
        let all: Vec<RouteKey> = vec![];
        // Two trunks at priority 0 with weights 3:1, a backup at priority 1.
        let mut admitted = [0u64, 0, 0];
        for _ in 0..400 {
            let ts = [
                v(&all, 0, 3, admitted[0], true),
                v(&all, 0, 1, admitted[1], true),
                v(&all, 1, 1, admitted[2], true),
            ];
            match route(&ts, "+39", NumberType::Fixed) {
                Route::Trunk(i) => admitted[i] += 1,
                r => panic!("{r:?}"),
            }
        }
        assert_eq!(admitted, [300, 100, 0]);
        // Both primaries full: the backup takes it.
        let ts = [
            v(&all, 0, 3, 0, false),
            v(&all, 0, 1, 0, false),
            v(&all, 1, 1, 0, true),
        ];
        assert_eq!(route(&ts, "+39", NumberType::Fixed), Route::Trunk(2));
        // All full: wait.
        let ts = [v(&all, 0, 3, 0, false), v(&all, 1, 1, 0, false)];
        assert_eq!(route(&ts, "+39", NumberType::Fixed), Route::Wait);
    }

    #[test]
    fn exclusion_and_no_route() {
        let fixed = keys(&["fixed"]);
        let mut a = v(&fixed, 0, 1, 0, true);
        assert_eq!(
            route(std::slice::from_ref(&a), "+39333", NumberType::Mobile),
            Route::NoRoute
        );
        a.eligible = false; // tried already (carrier fault) or down
        assert_eq!(route(&[a], "+390771", NumberType::Fixed), Route::NoRoute);
    }
}
