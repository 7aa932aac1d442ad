//! The derived channels of a lookup (see `crate::robust`), as a child
//! module of `state` so it reads the match state directly while keeping
//! its code apart from the plain paths.

use std::collections::{HashMap, HashSet};

use echotrace_index::{hamming, Code256, Hit};
use echotrace_signals::robust::BankSource;
use echotrace_signals::signal::SignalType;
use echotrace_signals::video::vpdq::{compare as compare_vpdq, VpdqComparison, VpdqHash};

use super::{Candidate, LiveHit, MatchState};
use crate::columns::Slot;
use crate::robust::{
    bank_hash_threshold, channel_threshold, closest, plain_groups, query_detail, refine_reach,
    vpdq_frames, Channel, ChannelDetail, DerivedHit, RobustQuery, PART_THRESHOLD, REFINE_BUDGET,
    REFINE_MAX_HASHES, REFINE_PAIRS_PER_ITEM, REFINE_THRESHOLD, REGION_THRESHOLD,
    STORED_NEEDLE_THRESHOLD, WINDOW_THRESHOLD,
};

use crate::types::{BankId, ContentId, SignalValue};

/// A bank window a needle came near without matching (alignment
/// refinement's candidates).
struct Near {
    hit: DerivedHit,
    code: Code256,
    needle: Option<usize>,
    distance: u32,
    threshold: u32,
    slot: Slot,
}

impl MatchState {
    /// The slot of a content item's signal of type `t` (its first in
    /// signal-id order), if any.
    fn signal_of(&self, content_id: ContentId, t: SignalType) -> Option<Slot> {
        let cs = self
            .content
            .slot_of(content_id)
            .filter(|cs| self.content.is_live(*cs))?;
        self.chain(cs)
            .into_iter()
            .filter(|s| self.signals.signal_type(*s) == Some(t))
            .min_by_key(|s| self.signals.ids.get(*s as usize).copied())
    }

    /// The stored PDQ code of a signal slot.
    fn pdq_code(&self, slot: Slot) -> Option<Code256> {
        self.pdq.get(u64::from(slot))
    }

    /// Hits of the derived channels; `push` keeps the best per item.
    /// `plain_vpdq` is the lookup's vPDQ signal (its value, parsed).
    pub(crate) fn find_robust(
        &self,
        robust: &RobustQuery,
        query: &[SignalValue],
        plain_vpdq: Option<(&str, &VpdqHash)>,
        filter: Option<&HashSet<BankId>>,
        push: &mut dyn FnMut(Candidate),
    ) {
        if let Some(set) = &robust.image {
            let plain_hex = set.plain.hash.to_hex();
            // Only when the lookup's PDQ signal is this image's.
            if query
                .iter()
                .any(|q| q.signal_type == SignalType::Pdq && q.value == plain_hex)
            {
                self.find_image(set, &plain_hex, robust.stored, filter, push);
            }
        }
        let Some((value, plain)) = plain_vpdq else {
            return;
        };
        match &robust.video {
            Some(video) => self.find_video(&video.vpdq, video, plain, value, filter, push),
            // A plain video query against the cropped vPDQ of bank videos
            // (the bank copy had bars, the upload has none).
            None => self.find_video_regions(plain, None, value, filter, push),
        }
    }

    /// `stored`: the set is a stored plain hash alone
    /// ([`RobustQuery::stored_pdq`]): of unknown quality, so it meets
    /// derived hashes at [`STORED_NEEDLE_THRESHOLD`] at most, and without
    /// pixels, so nothing is refined and no query rectangle is reported.
    fn find_image(
        &self,
        set: &echotrace_signals::robust::QuerySet,
        plain_hex: &str,
        stored: bool,
        filter: Option<&HashSet<BankId>>,
        push: &mut dyn FnMut(Candidate),
    ) {
        let plain_words = set.plain.hash.to_words();
        let mut hits: Vec<Hit> = Vec::new();
        // Items a channel matched (no refinement for them).
        let mut matched: HashSet<ContentId> = HashSet::new();
        // Query-side hashes against the stored (plain) hashes.
        for g in plain_groups(set) {
            let t = channel_threshold(g.channel);
            let codes: Vec<Code256> = g.needles.iter().map(|(c, _)| *c).collect();
            hits.clear();
            self.pdq.search_multi(&codes, t, &mut hits);
            for h in &hits {
                let Ok(slot) = Slot::try_from(h.id) else {
                    continue;
                };
                let Some(live) = self.live(slot, filter) else {
                    continue;
                };
                let settings = self.derived.settings(live.bank.id);
                if (!g.orig_only && !settings.dihedral)
                    || (g.channel == Channel::Window && !settings.window)
                {
                    continue;
                }
                let Some(code) = self.pdq_code(slot) else {
                    continue;
                };
                let Some((i, d)) = closest(set, g.needles.iter().map(|(_, i)| Some(*i)), &code)
                else {
                    continue;
                };
                let mut detail = query_detail(set, i);
                detail.plain_distance = Some(hamming(&plain_words, &code));
                detail.threshold = Some(t);
                matched.insert(live.content_id);
                push(Candidate {
                    distance: Some(i64::from(d)),
                    channel: g.channel,
                    detail: Some(detail.to_json()),
                    ..Candidate::of(&live, SignalType::Pdq, plain_hex)
                });
            }
        }
        // Every query hash against the derived hashes of file-added items.
        let mut needles: Vec<(Code256, Option<usize>)> = Vec::new();
        if stored || set.plain.quality >= echotrace_signals::robust::MIN_DERIVED_QUALITY {
            needles.push((plain_words, None));
        }
        needles.extend(
            set.hashes
                .iter()
                .enumerate()
                .map(|(i, q)| (q.hash.to_words(), Some(i))),
        );
        let codes: Vec<Code256> = needles.iter().map(|(c, _)| *c).collect();
        let radius = WINDOW_THRESHOLD.max(REGION_THRESHOLD).max(PART_THRESHOLD);
        // Bank windows a needle came near (within `REFINE_MARGIN` of the
        // threshold), for items nothing matched.
        let mut near: Vec<Near> = Vec::new();
        for hit in self.derived.search(&codes, radius) {
            let channel = match hit.source {
                BankSource::Window => Channel::Window,
                BankSource::Region => Channel::Region,
                BankSource::Part => Channel::Part,
            };
            let Some(slot) = self.signal_of(hit.content_id, SignalType::Pdq) else {
                continue;
            };
            let Some(live) = self.live(slot, filter) else {
                continue;
            };
            let settings = self.derived.settings(live.bank.id);
            if !settings.holds(hit.source) {
                continue;
            }
            // Which needle matched, among those this bank allows; bank
            // windows take only the upload as it is and its mirror; a
            // bank part takes only the same part of the upload, and query
            // parts meet nothing else.
            let part_of =
                |i: &Option<usize>| i.and_then(|i| set.hashes.get(i)).and_then(|q| q.part);
            let allowed = needles.iter().filter(|(_, i)| match hit.source {
                BankSource::Part => part_of(i) == Some(hit.removed),
                _ => part_of(i).is_none(),
            });
            let allowed = allowed.filter(|(_, i)| {
                let variant = i.map_or(Some(0), |i| set.hashes.get(i).map(|q| q.variant));
                variant.is_some_and(|v| {
                    (settings.dihedral || v == 0)
                        && (channel != Channel::Window
                            || echotrace_signals::robust::window_variant_allowed(v))
                })
            });
            let allowed: Vec<Option<usize>> = allowed
                .filter(|(_, i)| {
                    settings.window
                        || i.is_none_or(|i| {
                            set.hashes.get(i).is_some_and(|q| {
                                q.source != echotrace_signals::robust::QuerySource::Crop
                            })
                        })
                })
                .map(|(_, i)| *i)
                .collect();
            let Some(code) = hit.code else { continue };
            let Some((i, d)) = closest(set, allowed.into_iter(), &code) else {
                continue;
            };
            let mut t = bank_hash_threshold(hit.source, hit.quality);
            if stored {
                t = t.min(STORED_NEEDLE_THRESHOLD);
            }
            if d > t {
                if !stored
                    && hit.source == BankSource::Window
                    && d <= refine_reach(t)
                    && self.derived.refines(live.bank.id)
                {
                    near.push(Near {
                        hit,
                        code,
                        needle: i,
                        distance: d,
                        threshold: t,
                        slot,
                    });
                }
                continue;
            }
            matched.insert(hit.content_id);
            let mut detail = query_detail(set, i);
            if stored {
                // The stored hash's image size is not known.
                detail.query_size = None;
                detail.query_rect = None;
            }
            detail.bank_source = Some(channel.as_str().into());
            detail.bank_removed = Some(hit.removed.map(|v| f32::from(v) / 200.0));
            detail.bank_quality = Some(hit.quality);
            detail.plain_distance = self.pdq_code(slot).map(|code| hamming(&plain_words, &code));
            detail.threshold = Some(t);
            push(Candidate {
                distance: Some(i64::from(d)),
                channel,
                detail: Some(detail.to_json()),
                ..Candidate::of(&live, SignalType::Pdq, plain_hex)
            });
        }
        self.refine_near(set, plain_hex, near, &matched, filter, push);
    }

    /// Alignment refinement (docs/ROBUST.md, "Alignment refinement"): for
    /// held items no channel matched, the bank windows a needle came near
    /// — the closest [`REFINE_PAIRS_PER_ITEM`] per item, closest to its
    /// threshold first — are met again by the needle with its sides moved
    /// toward the window (`QuerySet::refine`), within [`REFINE_BUDGET`]
    /// window hashes per lookup (hashes tried count, improving or not). A refined rectangle of quality ≥ 50
    /// matches within [`REFINE_THRESHOLD`].
    fn refine_near(
        &self,
        set: &echotrace_signals::robust::QuerySet,
        plain_hex: &str,
        mut near: Vec<Near>,
        matched: &HashSet<ContentId>,
        filter: Option<&HashSet<BankId>>,
        push: &mut dyn FnMut(Candidate),
    ) {
        if near.is_empty() {
            return;
        }
        let plain_words = set.plain.hash.to_words();
        near.sort_by_key(|n| (n.distance - n.threshold, n.distance, n.hit.content_id));
        let mut per_item: HashMap<ContentId, usize> = HashMap::new();
        let mut done: HashSet<ContentId> = HashSet::new();
        let mut spent = 0u32;
        let mut wh = echotrace_signals::robust::WindowHasher::new();
        for n in near {
            // A refinement may spend up to `REFINE_MAX_HASHES`: the budget
            // is never exceeded.
            if spent + REFINE_MAX_HASHES > REFINE_BUDGET {
                break;
            }
            let id = n.hit.content_id;
            if matched.contains(&id) || done.contains(&id) {
                continue;
            }
            let Some(live) = self.live(n.slot, filter) else {
                continue;
            };
            // A plain match of the item decides it already.
            let stored = self.pdq_code(n.slot);
            let plain_distance = stored.map(|c| hamming(&plain_words, &c));
            if plain_distance.is_some_and(|d| f64::from(d) <= live.bank.threshold(SignalType::Pdq))
            {
                continue;
            }
            let tried = per_item.entry(id).or_default();
            if *tried >= REFINE_PAIRS_PER_ITEM {
                continue;
            }
            *tried += 1;
            let target = echotrace_signals::pdq::PdqHash::from_words(n.code);
            let Ok(out) = set.refine(
                &mut wh,
                n.needle,
                &target,
                n.distance,
                echotrace_signals::robust::MIN_DERIVED_QUALITY,
            ) else {
                continue;
            };
            spent += out.hashes;
            let Some(r) = out.best else { continue };
            if r.distance > REFINE_THRESHOLD {
                continue;
            }
            done.insert(id);
            let mut detail = query_detail(set, n.needle);
            detail.query_rect = Some([r.rect.x, r.rect.y, r.rect.w, r.rect.h]);
            detail.refined_from = Some(n.distance);
            detail.bank_source = Some(Channel::Window.as_str().into());
            detail.bank_removed = Some(n.hit.removed.map(|v| f32::from(v) / 200.0));
            detail.bank_quality = Some(n.hit.quality);
            detail.plain_distance = plain_distance;
            detail.threshold = Some(REFINE_THRESHOLD);
            push(Candidate {
                distance: Some(i64::from(r.distance)),
                channel: Channel::Window,
                detail: Some(detail.to_json()),
                ..Candidate::of(&live, SignalType::Pdq, plain_hex)
            });
        }
    }

    /// A cropped upload against bank videos (stored plain and cropped).
    fn find_video(
        &self,
        cropped: &VpdqHash,
        video: &echotrace_signals::video::vpdq::CroppedVpdq,
        plain: &VpdqHash,
        query_value: &str,
        filter: Option<&HashSet<BankId>>,
        push: &mut dyn FnMut(Candidate),
    ) {
        let mut videos = Vec::new();
        self.vpdq_index.query(&vpdq_frames(cropped), &mut videos);
        for v in videos {
            let Ok(slot) = Slot::try_from(v.video_id) else {
                continue;
            };
            let Some(live) = self.live(slot, filter) else {
                continue;
            };
            let Some(stored) = self.vpdq.get(&slot) else {
                continue;
            };
            let opts = live.bank.vpdq_rule();
            let cmp = compare_vpdq(cropped, stored, &opts);
            if !cmp.is_match {
                continue;
            }
            let detail = ChannelDetail {
                query_source: Some("border".into()),
                query_rect: Some([video.rect.x, video.rect.y, video.rect.w, video.rect.h]),
                query_size: Some([video.width, video.height]),
                plain_query_pct: Some(compare_vpdq(plain, stored, &opts).query_match_pct),
                ..ChannelDetail::default()
            };
            push(vpdq_candidate(
                &live,
                query_value,
                Channel::Border,
                &cmp,
                &detail,
            ));
        }
        self.find_video_regions(plain, Some((cropped, video)), query_value, filter, push);
    }

    /// The upload (plain, and cropped when it has bars) against the
    /// cropped vPDQ of bank videos that had bars.
    fn find_video_regions(
        &self,
        plain: &VpdqHash,
        cropped: Option<(&VpdqHash, &echotrace_signals::video::vpdq::CroppedVpdq)>,
        query_value: &str,
        filter: Option<&HashSet<BankId>>,
        push: &mut dyn FnMut(Candidate),
    ) {
        let mut tried: Vec<(
            &VpdqHash,
            Option<&echotrace_signals::video::vpdq::CroppedVpdq>,
        )> = vec![(plain, None)];
        if let Some((c, v)) = cropped {
            tried.push((c, Some(v)));
        }
        for (q, rect) in tried {
            for (content_id, _, _) in self.derived.search_vpdq(q) {
                let Some(slot) = self.signal_of(content_id, SignalType::Vpdq) else {
                    continue;
                };
                let Some(live) = self.live(slot, filter) else {
                    continue;
                };
                let Some(stored) = self.derived.cropped_vpdq(content_id) else {
                    continue;
                };
                let opts = live.bank.vpdq_rule();
                let cmp = compare_vpdq(q, stored, &opts);
                if !cmp.is_match {
                    continue;
                }
                let plain_pct = self
                    .vpdq
                    .get(&slot)
                    .map(|s| compare_vpdq(plain, s, &opts).query_match_pct);
                let detail = ChannelDetail {
                    query_source: Some(if rect.is_some() { "border" } else { "whole" }.into()),
                    query_rect: rect.map(|v| [v.rect.x, v.rect.y, v.rect.w, v.rect.h]),
                    query_size: rect.map(|v| [v.width, v.height]),
                    bank_source: Some("region".into()),
                    plain_query_pct: plain_pct,
                    ..ChannelDetail::default()
                };
                push(vpdq_candidate(
                    &live,
                    query_value,
                    Channel::Region,
                    &cmp,
                    &detail,
                ));
            }
        }
    }
}

/// A derived-channel vPDQ hit with its shares.
fn vpdq_candidate(
    live: &LiveHit<'_>,
    query_value: &str,
    channel: Channel,
    cmp: &VpdqComparison,
    detail: &ChannelDetail,
) -> Candidate {
    Candidate {
        similarity: Some(cmp.query_match_pct / 100.0),
        compared_similarity: Some(cmp.compared_match_pct / 100.0),
        channel,
        detail: Some(detail.to_json()),
        ..Candidate::of(live, SignalType::Vpdq, query_value)
    }
}
