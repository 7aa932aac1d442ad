//! The derived channels of a lookup (see `crate::robust`), as a child
//! module of `state` so it reads the match state directly while keeping
//! its code apart from the plain paths.

use std::collections::HashSet;

use echotrace_index::{hamming, Code256, Hit};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::robust::BankSource;
use echotrace_signals::signal::SignalType;
use echotrace_signals::video::vpdq::{compare as compare_vpdq, VpdqHash, VpdqMatchOptions};

use super::{threshold_distance, to_i64, Candidate, MatchState};
use crate::robust::{
    channel_threshold, closest, plain_groups, query_detail, Channel, ChannelDetail, RobustQuery,
    REGION_THRESHOLD, WINDOW_THRESHOLD,
};
use crate::types::{BankId, ContentId, SignalId, SignalValue};

impl MatchState {
    /// The PDQ signal of a content item (its first), if any.
    fn pdq_signal_of(&self, content_id: ContentId) -> Option<SignalId> {
        let c = self.contents.get(&content_id)?;
        c.signal_ids.iter().copied().find(|sid| {
            self.signals
                .get(sid)
                .is_some_and(|s| s.signal_type == SignalType::Pdq)
        })
    }

    /// The vPDQ signal of a content item (its first), if any.
    fn vpdq_signal_of(&self, content_id: ContentId) -> Option<SignalId> {
        let c = self.contents.get(&content_id)?;
        c.signal_ids.iter().copied().find(|sid| {
            self.signals
                .get(sid)
                .is_some_and(|s| s.signal_type == SignalType::Vpdq)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn derived_candidate(
        &self,
        sid: SignalId,
        filter: Option<&HashSet<BankId>>,
        signal_type: SignalType,
        query_value: &str,
        channel: Channel,
        distance: Option<i64>,
        similarity: Option<f64>,
        detail: ChannelDetail,
    ) -> Option<Candidate> {
        let (s, c, b, bank_id) = self.live(sid, filter)?;
        Some(Candidate {
            bank_id,
            bank_kind: b.kind,
            content_id: s.content_id,
            signal_id: sid,
            signal_type,
            matched_value: s.value.clone(),
            query_value: query_value.to_string(),
            distance,
            similarity,
            labels: c.labels.clone(),
            channel,
            detail: Some(detail.to_json()),
        })
    }

    /// Hits of the derived channels; `push` keeps the best per item.
    pub(crate) fn find_robust(
        &self,
        robust: &RobustQuery,
        query: &[SignalValue],
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
                self.find_image(set, &plain_hex, filter, push);
            }
        }
        if let Some(video) = &robust.video {
            let plain = query
                .iter()
                .find(|q| q.signal_type == SignalType::Vpdq)
                .and_then(|q| VpdqHash::from_signal_str(&q.value).ok().map(|h| (q, h)));
            if let Some((q, plain)) = plain {
                self.find_video(&video.vpdq, video, &plain, &q.value, filter, push);
            }
        }
        // A plain video query against the cropped vPDQ of bank videos
        // (the bank copy had bars, the upload has none).
        if robust.video.is_none() {
            if let Some(q) = query.iter().find(|q| q.signal_type == SignalType::Vpdq) {
                if let Ok(plain) = VpdqHash::from_signal_str(&q.value) {
                    self.find_video_regions(&plain, None, &q.value, filter, push);
                }
            }
        }
    }

    fn find_image(
        &self,
        set: &echotrace_signals::robust::QuerySet,
        plain_hex: &str,
        filter: Option<&HashSet<BankId>>,
        push: &mut dyn FnMut(Candidate),
    ) {
        let plain_words = set.plain.hash.to_words();
        let mut hits: Vec<Hit> = Vec::new();
        // Query-side hashes against the stored (plain) hashes.
        for g in plain_groups(set) {
            let t = channel_threshold(g.channel);
            let codes: Vec<Code256> = g.needles.iter().map(|(c, _)| *c).collect();
            hits.clear();
            self.pdq.search_multi(&codes, t, &mut hits);
            for h in &hits {
                let sid = to_i64(h.id);
                let Some((s, _, _, bank_id)) = self.live(sid, filter) else {
                    continue;
                };
                let settings = self.derived.settings(bank_id);
                if (!g.orig_only && !settings.dihedral)
                    || (g.channel == Channel::Window && !settings.window)
                {
                    continue;
                }
                let Ok(stored) = PdqHash::from_hex(&s.value) else {
                    continue;
                };
                let code = stored.to_words();
                let Some((i, d)) = closest(set, g.needles.iter().map(|(_, i)| Some(*i)), &code)
                else {
                    continue;
                };
                let mut detail = query_detail(set, i);
                detail.plain_distance = Some(hamming(&plain_words, &code));
                detail.threshold = Some(t);
                if let Some(cand) = self.derived_candidate(
                    sid,
                    filter,
                    SignalType::Pdq,
                    plain_hex,
                    g.channel,
                    Some(i64::from(d)),
                    None,
                    detail,
                ) {
                    push(cand);
                }
            }
        }
        // Every query hash against the derived hashes of file-added items.
        let mut needles: Vec<(Code256, Option<usize>)> = Vec::new();
        if set.plain.quality >= echotrace_signals::robust::MIN_DERIVED_QUALITY {
            needles.push((plain_words, None));
        }
        needles.extend(
            set.hashes
                .iter()
                .enumerate()
                .map(|(i, q)| (q.hash.to_words(), Some(i))),
        );
        let codes: Vec<Code256> = needles.iter().map(|(c, _)| *c).collect();
        let radius = WINDOW_THRESHOLD.max(REGION_THRESHOLD);
        for hit in self.derived.search(&codes, radius) {
            let channel = match hit.source {
                BankSource::Window => Channel::Window,
                BankSource::Region => Channel::Region,
            };
            let Some(sid) = self.pdq_signal_of(hit.content_id) else {
                continue;
            };
            let Some((s, _, _, bank_id)) = self.live(sid, filter) else {
                continue;
            };
            let settings = self.derived.settings(bank_id);
            if channel == Channel::Window && !settings.window {
                continue;
            }
            // Which needle matched, among those this bank allows.
            let allowed = needles.iter().filter(|(_, i)| {
                settings.dihedral
                    || i.is_none_or(|i| set.hashes.get(i).is_some_and(|q| q.variant == 0))
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
            let t = channel_threshold(channel);
            if d > t {
                continue;
            }
            let mut detail = query_detail(set, i);
            detail.bank_source = Some(channel.as_str().into());
            detail.bank_removed = Some(hit.removed.map(|v| f32::from(v) / 200.0));
            detail.plain_distance = PdqHash::from_hex(&s.value)
                .ok()
                .map(|h| hamming(&plain_words, &h.to_words()));
            detail.threshold = Some(t);
            if let Some(cand) = self.derived_candidate(
                sid,
                filter,
                SignalType::Pdq,
                plain_hex,
                channel,
                Some(i64::from(d)),
                None,
                detail,
            ) {
                push(cand);
            }
        }
    }

    /// vPDQ rule of a bank, as options.
    fn vpdq_rule(&self, bank_id: BankId) -> Option<VpdqMatchOptions> {
        let b = self.banks.get(&bank_id)?;
        Some(VpdqMatchOptions {
            distance_threshold: threshold_distance(b.threshold(SignalType::Vpdq)),
            query_match_threshold_pct: b.vpdq_query_pct,
            compared_match_threshold_pct: b.vpdq_compared_pct,
            ..VpdqMatchOptions::default()
        })
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
        self.vpdq_index
            .query(&super::vpdq_frames(cropped), &mut videos);
        for v in videos {
            let sid = to_i64(v.video_id);
            let Some((_, _, _, bank_id)) = self.live(sid, filter) else {
                continue;
            };
            let (Some(opts), Some(stored)) = (self.vpdq_rule(bank_id), self.vpdq.get(&sid)) else {
                continue;
            };
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
            if let Some(c) = self.derived_candidate(
                sid,
                filter,
                SignalType::Vpdq,
                query_value,
                Channel::Border,
                None,
                Some(cmp.query_match_pct / 100.0),
                detail,
            ) {
                push(c);
            }
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
                let Some(sid) = self.vpdq_signal_of(content_id) else {
                    continue;
                };
                let Some((_, _, _, bank_id)) = self.live(sid, filter) else {
                    continue;
                };
                let (Some(opts), Some(stored)) = (
                    self.vpdq_rule(bank_id),
                    self.derived.cropped_vpdq(content_id),
                ) else {
                    continue;
                };
                let cmp = compare_vpdq(q, stored, &opts);
                if !cmp.is_match {
                    continue;
                }
                let plain_pct = self
                    .vpdq
                    .get(&sid)
                    .map(|s| compare_vpdq(plain, s, &opts).query_match_pct);
                let detail = ChannelDetail {
                    query_source: Some(if rect.is_some() { "border" } else { "whole" }.into()),
                    query_rect: rect.map(|v| [v.rect.x, v.rect.y, v.rect.w, v.rect.h]),
                    query_size: rect.map(|v| [v.width, v.height]),
                    bank_source: Some("region".into()),
                    plain_query_pct: plain_pct,
                    ..ChannelDetail::default()
                };
                if let Some(c) = self.derived_candidate(
                    sid,
                    filter,
                    SignalType::Vpdq,
                    query_value,
                    Channel::Region,
                    None,
                    Some(cmp.query_match_pct / 100.0),
                    detail,
                ) {
                    push(c);
                }
            }
        }
    }
}
