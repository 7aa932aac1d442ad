//! Decoding untrusted video by running `ffprobe`/`ffmpeg` as isolated child
//! processes.
//!
//! This is the signals crate's one kind of I/O: it spawns exactly the two
//! program paths it is configured with (resolved to absolute paths once, in
//! [`Ffmpeg::locate`]) and talks to them over pipes. Nothing else is executed
//! and, unless the operator opts into [`SeekableInput::TempFile`], nothing is
//! written to disk.
//!
//! Design:
//! - **Input over stdin.** The upload is written to the child's stdin from a
//!   separate thread, so a child that stops reading can never deadlock us.
//!   MP4 files whose `moov` atom follows `mdat` need a seekable input; small
//!   ones still decode from the pipe (ffmpeg's read buffer covers them), big
//!   ones fail with [`VideoError::NeedsSeekableInput`] unless the operator
//!   enabled the temp-file mode, in which case they go straight to a private
//!   (0600, `create_new`) file that is deleted when decoding ends.
//! - **Output over stdout.** Raw `rgb24` frames of a fixed size. The filter
//!   chain pins the output size, so a stream that changes resolution midway
//!   cannot desynchronise frame framing.
//! - **Limits, all configurable** ([`VideoLimits`]): input bytes, width×height,
//!   duration and frame count are checked from `ffprobe` before any decoding;
//!   the frame count is enforced again during decoding (a `trim` filter stops
//!   ffmpeg one frame past the limit, and that extra frame is detected);
//!   a wall-clock watchdog kills the child at the deadline; `RLIMIT_AS`
//!   caps its address space, `RLIMIT_FSIZE = 0` forbids it to write files and
//!   `RLIMIT_CORE = 0` forbids core dumps of hostile content. The child runs
//!   with an empty environment (no `FFREPORT` log files) and
//!   `-protocol_whitelist pipe` (or `file` in temp-file mode) plus a demuxer
//!   allow-list, so a playlist-style upload (HLS, concat) cannot make ffmpeg
//!   open other files or URLs.
//! - **Kill on drop.** [`FrameStream`] owns the child; dropping it early kills
//!   and reaps the child and joins the helper threads.
//! - **Strict errors.** `-xerror` with `-err_detect explode` makes ffmpeg
//!   stop at the first decode error (including ones a decoder would
//!   otherwise conceal), so a truncated or corrupt upload is a clean
//!   [`VideoError::DecodeFailed`] instead of a silently partial hash (the
//!   reference hashes whatever prefix decodes; set
//!   [`FfmpegConfig::strict`] to `false` for that behaviour).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Demuxers ffmpeg may use on uploads. Covers what platforms receive
/// (MP4/MOV, Matroska/WebM, AVI, FLV, MPEG-TS/PS, Ogg, animated GIF, raw
/// H.264/HEVC elementary streams, 3GP) and excludes every demuxer that can
/// reference other files or URLs (hls, dash, concat, image2, ...).
pub const DEFAULT_FORMAT_WHITELIST: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,gif,h264,hevc,m4v,asf,mxf,ivf,yuv4mpegpipe";

/// Bytes of ffmpeg's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

/// Errors from probing or decoding a video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{program} not found or not runnable ({detail}); install ffmpeg (e.g. `apt-get install ffmpeg`) or configure its path — image and text signals keep working without it")]
    FfmpegMissing { program: String, detail: String },
    #[error("no video stream in the input")]
    NoVideoStream,
    #[error("input is not a readable video: {0}")]
    Unreadable(String),
    #[error("input too large: {actual} bytes (limit {limit})")]
    InputTooLarge { actual: u64, limit: u64 },
    #[error("video dimensions {width}x{height} exceed the limit of {limit} pixels")]
    TooManyPixels { width: u64, height: u64, limit: u64 },
    #[error("video dimensions {width}x{height} are too small to hash (minimum 5x5)")]
    TooSmall { width: u64, height: u64 },
    #[error("video duration {seconds:.1}s exceeds the limit of {limit:.1}s")]
    TooLong { seconds: f64, limit: f64 },
    #[error("video has more than {limit} frames")]
    TooManyFrames { limit: u64 },
    #[error("video frame rate is missing or zero")]
    NoFrameRate,
    #[error("MP4 with its index (moov) after the media data cannot be decoded from a pipe: remux it with `ffmpeg -i IN -c copy -movflags +faststart OUT`, or the operator can allow private temporary files for such videos (`serve --video-temp-dir DIR`)")]
    NeedsSeekableInput,
    #[error("video processing exceeded the {0:?} time limit")]
    Timeout(Duration),
    #[error("ffmpeg failed to decode the video ({status}): {stderr}")]
    DecodeFailed { status: String, stderr: String },
    #[error("video decoded to no frames")]
    NoFrames,
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("I/O error talking to ffmpeg: {0}")]
    Io(#[from] io::Error),
}

/// Resource limits for one probe + decode. Every field is a hard limit.
#[derive(Clone, Debug)]
pub struct VideoLimits {
    /// Wall-clock limit for the whole operation (probe and decode).
    pub timeout: Duration,
    /// Address-space limit (`RLIMIT_AS`) for each child process, in bytes.
    pub memory_bytes: u64,
    /// Largest accepted upload, in bytes.
    pub max_input_bytes: u64,
    /// Longest accepted duration, in seconds.
    pub max_duration_secs: f64,
    /// Most decoded frames accepted.
    pub max_frames: u64,
    /// Largest accepted width × height.
    pub max_pixels: u64,
}

impl Default for VideoLimits {
    fn default() -> Self {
        VideoLimits {
            timeout: Duration::from_secs(300),
            memory_bytes: 3 << 30,
            max_input_bytes: 2 << 30,
            max_duration_secs: 4.0 * 3600.0,
            max_frames: 1_000_000,
            max_pixels: 4096 * 4096,
        }
    }
}

/// What to do with inputs that need a seekable file (MP4 with `moov` last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SeekableInput {
    /// Try the pipe anyway; if that fails, return
    /// [`VideoError::NeedsSeekableInput`]. Nothing is written to disk.
    #[default]
    Refuse,
    /// Write such uploads to a private temporary file in this directory
    /// (deleted afterwards) and let ffmpeg read that file.
    TempFile(PathBuf),
}

/// How to run ffmpeg.
#[derive(Clone, Debug)]
pub struct FfmpegConfig {
    /// `ffmpeg` program: a path, or a bare name looked up in `PATH`.
    pub ffmpeg: PathBuf,
    /// `ffprobe` program: a path, or a bare name looked up in `PATH`.
    pub ffprobe: PathBuf,
    pub limits: VideoLimits,
    pub seekable_input: SeekableInput,
    /// Decoder threads (`-threads`); 0 lets ffmpeg choose.
    pub threads: u32,
    /// Stop at the first decode error (see module docs).
    pub strict: bool,
    /// Comma-separated demuxer allow-list passed as `-format_whitelist`.
    pub format_whitelist: String,
}

impl Default for FfmpegConfig {
    fn default() -> Self {
        FfmpegConfig {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
            limits: VideoLimits::default(),
            seekable_input: SeekableInput::Refuse,
            threads: 2,
            strict: true,
            format_whitelist: DEFAULT_FORMAT_WHITELIST.to_string(),
        }
    }
}

/// Facts about a video's first video stream, from `ffprobe`.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second: `avg_frame_rate`, or `r_frame_rate` when that is
    /// unset — the reference's rule.
    pub fps: f64,
    /// Duration in seconds, when the container states one.
    pub duration_secs: Option<f64>,
    /// Frame count, when the container states one.
    pub nb_frames: Option<u64>,
    /// Demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format_name: String,
    pub codec_name: String,
}

/// What to decode: which frames and at what size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramePlan {
    /// Keep decoded frames whose index is a multiple of this (≥ 1).
    pub every_nth: u64,
    /// Output frame size; frames are scaled with swscale's area filter.
    pub width: u32,
    pub height: u32,
}

/// Most frames [`Ffmpeg::decode_picked`] accepts (each becomes one `eq(n,k)`
/// term of the select expression).
pub const MAX_PICKED_FRAMES: usize = 64;

/// What [`Ffmpeg::decode_picked`] decodes: these decoded-frame numbers,
/// scaled to this size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePick {
    pub frames: Vec<u64>,
    pub width: u32,
    pub height: u32,
}

/// How far one decoder run goes and how many frames it may write.
#[derive(Clone, Copy, Debug)]
struct Outputs {
    /// Decoded frames from this number on are not decoded (`trim`).
    end_frame: u64,
    /// More output frames than this is [`VideoError::TooManyFrames`].
    max_output_frames: u64,
}

/// A located ffmpeg installation plus its configuration.
#[derive(Clone, Debug)]
pub struct Ffmpeg {
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
    config: FfmpegConfig,
}

impl Ffmpeg {
    /// Resolves both programs to absolute paths and checks that they run
    /// (`-version`). Fails with [`VideoError::FfmpegMissing`] otherwise.
    pub fn locate(config: FfmpegConfig) -> Result<Self, VideoError> {
        if config.threads > 64 {
            return Err(VideoError::InvalidOption(
                "threads must be at most 64".into(),
            ));
        }
        let ffmpeg = resolve_program(&config.ffmpeg)?;
        let ffprobe = resolve_program(&config.ffprobe)?;
        for p in [&ffmpeg, &ffprobe] {
            check_runs(p)?;
        }
        Ok(Ffmpeg {
            ffmpeg,
            ffprobe,
            config,
        })
    }

    /// Like [`Ffmpeg::locate`] but only resolves the paths, without running
    /// them: cheap enough for every CLI start. A program that then fails to
    /// start is still reported as [`VideoError::FfmpegMissing`].
    pub fn resolve(config: FfmpegConfig) -> Result<Self, VideoError> {
        if config.threads > 64 {
            return Err(VideoError::InvalidOption(
                "threads must be at most 64".into(),
            ));
        }
        Ok(Ffmpeg {
            ffmpeg: resolve_program(&config.ffmpeg)?,
            ffprobe: resolve_program(&config.ffprobe)?,
            config,
        })
    }

    pub fn config(&self) -> &FfmpegConfig {
        &self.config
    }

    /// The same installation with another [`SeekableInput`] policy.
    pub fn with_seekable_input(mut self, seekable: SeekableInput) -> Self {
        self.config.seekable_input = seekable;
        self
    }

    /// Probes `input` and checks it against the limits.
    pub fn probe(&self, input: &Arc<[u8]>) -> Result<VideoInfo, VideoError> {
        let deadline = Instant::now() + self.config.limits.timeout;
        self.probe_until(input, deadline).map(|(info, _)| info)
    }

    /// Probes, plans and starts decoding. `plan_for` turns the probed facts
    /// into a [`FramePlan`]. The whole operation, including reading every
    /// frame from the returned stream, must finish within the timeout.
    pub fn decode(
        &self,
        input: Arc<[u8]>,
        plan_for: impl FnOnce(&VideoInfo) -> Result<FramePlan, VideoError>,
    ) -> Result<(VideoInfo, FrameStream), VideoError> {
        let deadline = Instant::now() + self.config.limits.timeout;
        let (info, temp) = self.probe_until(&input, deadline)?;
        let plan = plan_for(&info)?;
        if plan.every_nth == 0 {
            return Err(VideoError::InvalidOption(
                "every_nth must be at least 1".into(),
            ));
        }
        check_dims(
            u64::from(plan.width),
            u64::from(plan.height),
            self.config.limits.max_pixels,
        )?;
        let max_frames = self.config.limits.max_frames;
        // select keeps every nth plus frame number max_frames, whose arrival
        // means "over the limit".
        let select = format!(
            "not(mod(n\\,{nth}))+eq(n\\,{max_frames})",
            nth = plan.every_nth
        );
        let outputs = Outputs {
            end_frame: max_frames.saturating_add(1),
            max_output_frames: max_frames.div_ceil(plan.every_nth),
        };
        let stream = self.spawn_decoder(input, temp, plan, &select, outputs, deadline)?;
        Ok((info, stream))
    }

    /// Probes and starts decoding only chosen frames: `pick` turns the
    /// probed facts into decoded-frame numbers (the numbering of
    /// [`FramePlan::every_nth`]) and an output size. The numbers are sorted
    /// and deduplicated; at most [`MAX_PICKED_FRAMES`] are accepted and none
    /// may reach the frame limit. Decoding stops after the last one. Frames
    /// arrive in ascending order; a video shorter than claimed yields fewer.
    pub fn decode_picked(
        &self,
        input: Arc<[u8]>,
        pick: impl FnOnce(&VideoInfo) -> Result<FramePick, VideoError>,
    ) -> Result<(VideoInfo, Vec<u64>, FrameStream), VideoError> {
        let deadline = Instant::now() + self.config.limits.timeout;
        let (info, temp) = self.probe_until(&input, deadline)?;
        let FramePick {
            mut frames,
            width,
            height,
        } = pick(&info)?;
        frames.sort_unstable();
        frames.dedup();
        let Some(&last) = frames.last() else {
            return Err(VideoError::InvalidOption("no frames picked".into()));
        };
        if frames.len() > MAX_PICKED_FRAMES {
            return Err(VideoError::InvalidOption(format!(
                "at most {MAX_PICKED_FRAMES} frames can be picked"
            )));
        }
        let max_frames = self.config.limits.max_frames;
        if last >= max_frames {
            return Err(VideoError::TooManyFrames { limit: max_frames });
        }
        check_dims(
            u64::from(width),
            u64::from(height),
            self.config.limits.max_pixels,
        )?;
        let select = frames
            .iter()
            .map(|n| format!("eq(n\\,{n})"))
            .collect::<Vec<_>>()
            .join("+");
        let plan = FramePlan {
            every_nth: 1,
            width,
            height,
        };
        let outputs = Outputs {
            end_frame: last.saturating_add(1),
            max_output_frames: frames.len() as u64,
        };
        let stream = self.spawn_decoder(input, temp, plan, &select, outputs, deadline)?;
        Ok((info, frames, stream))
    }

    fn probe_until(
        &self,
        input: &Arc<[u8]>,
        deadline: Instant,
    ) -> Result<(VideoInfo, Option<Arc<TempInput>>), VideoError> {
        let limits = &self.config.limits;
        let len = input.len() as u64;
        if len > limits.max_input_bytes {
            return Err(VideoError::InputTooLarge {
                actual: len,
                limit: limits.max_input_bytes,
            });
        }
        let temp = match (&self.config.seekable_input, mp4_moov_after_mdat(input)) {
            (SeekableInput::TempFile(dir), true) => Some(Arc::new(TempInput::create(dir, input)?)),
            _ => None,
        };
        let mut args: Vec<OsString> = vec!["-hide_banner".into(), "-v".into(), "error".into()];
        push_input_args(&mut args, &self.config, temp.as_deref(), input);
        args.extend(
            [
                "-show_entries",
                "stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,duration:format=duration,format_name",
                "-of",
                "json",
            ]
            .map(OsString::from),
        );
        let feed = if temp.is_some() {
            None
        } else {
            Some(Arc::clone(input))
        };
        let mut child =
            Supervised::spawn(&self.ffprobe, &args, feed, limits.memory_bytes, deadline)?;
        let mut out = Vec::new();
        if let Some(stdout) = child.stdout.as_mut() {
            // ffprobe's JSON for one file is small; cap what we accept.
            stdout.take(1 << 20).read_to_end(&mut out)?;
        }
        let (status, stderr) = child.finish()?;
        if !status.success() {
            return Err(VideoError::Unreadable(stderr));
        }
        let info = parse_probe(&out)?;
        check_dims(
            u64::from(info.width),
            u64::from(info.height),
            limits.max_pixels,
        )?;
        if let Some(d) = info.duration_secs {
            if d > limits.max_duration_secs {
                return Err(VideoError::TooLong {
                    seconds: d,
                    limit: limits.max_duration_secs,
                });
            }
        }
        let estimated = info
            .nb_frames
            .or_else(|| info.duration_secs.map(|d| (d * info.fps).ceil() as u64));
        if estimated.is_some_and(|n| n > limits.max_frames) {
            return Err(VideoError::TooManyFrames {
                limit: limits.max_frames,
            });
        }
        Ok((info, temp))
    }

    /// Starts ffmpeg: decoded frames `0..outputs.end_frame` pass the
    /// `select` expression, are scaled to the plan's size and written as
    /// raw rgb24.
    fn spawn_decoder(
        &self,
        input: Arc<[u8]>,
        temp: Option<Arc<TempInput>>,
        plan: FramePlan,
        select: &str,
        outputs: Outputs,
        deadline: Instant,
    ) -> Result<FrameStream, VideoError> {
        let limits = &self.config.limits;
        let frame_len = (plan.width as usize)
            .checked_mul(plan.height as usize)
            .and_then(|p| p.checked_mul(3))
            .ok_or(VideoError::TooManyPixels {
                width: u64::from(plan.width),
                height: u64::from(plan.height),
                limit: limits.max_pixels,
            })?;
        let max_frames = limits.max_frames;
        let mut args: Vec<OsString> = vec![
            "-nostdin".into(),
            "-hide_banner".into(),
            "-v".into(),
            "error".into(),
        ];
        if self.config.strict {
            // -xerror stops at the first error ffmpeg reports; explode makes
            // decoders report what they would otherwise conceal (HEVC
            // silently outputs a half-decoded last frame of a cut stream).
            args.extend(["-xerror", "-err_detect", "explode"].map(OsString::from));
        }
        if self.config.threads > 0 {
            args.push("-threads".into());
            args.push(self.config.threads.to_string().into());
        }
        push_input_args(&mut args, &self.config, temp.as_deref(), &input);
        // trim stops decoding at end_frame; select picks the frames.
        // swscale converts with the area filter and BT.601 coefficients,
        // exactly what the reference's sws_getContext(..., SWS_AREA) does.
        let filter = format!(
            "trim=end_frame={end},select='{select}',scale=w={w}:h={h}:flags=area:in_color_matrix=bt601,format=rgb24",
            end = outputs.end_frame,
            w = plan.width,
            h = plan.height,
        );
        args.extend(
            [
                "-map",
                "0:v:0",
                "-an",
                "-sn",
                "-dn",
                "-fps_mode",
                "passthrough",
                "-sws_flags",
                "area",
                "-vf",
                filter.as_str(),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "pipe:1",
            ]
            .map(OsString::from),
        );
        let feed = if temp.is_some() {
            None
        } else {
            Some(input.clone())
        };
        let child = Supervised::spawn(&self.ffmpeg, &args, feed, limits.memory_bytes, deadline)?;
        Ok(FrameStream {
            child: Some(child),
            plan,
            frame_len,
            frames_read: 0,
            max_output_frames: outputs.max_output_frames,
            max_frames,
            moov_after_mdat: mp4_moov_after_mdat(&input),
            _temp: temp,
        })
    }
}

/// Decoded frames, read one at a time. Dropping it kills the decoder.
pub struct FrameStream {
    child: Option<Supervised>,
    plan: FramePlan,
    frame_len: usize,
    frames_read: u64,
    max_output_frames: u64,
    max_frames: u64,
    moov_after_mdat: bool,
    _temp: Option<Arc<TempInput>>,
}

impl FrameStream {
    pub fn plan(&self) -> FramePlan {
        self.plan
    }

    /// Reads the next frame (rgb24, `plan().width × plan().height`) into
    /// `buf`. Returns `Ok(false)` at the end of a successful decode.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<bool, VideoError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(false);
        };
        buf.resize(self.frame_len, 0);
        let got = match child.stdout.as_mut() {
            Some(out) => read_full(out, buf)?,
            None => 0,
        };
        if got == self.frame_len {
            self.frames_read += 1;
            if self.frames_read > self.max_output_frames {
                return Err(VideoError::TooManyFrames {
                    limit: self.max_frames,
                });
            }
            return Ok(true);
        }
        // End of output (possibly a partial frame): collect the exit status.
        let Some(child) = self.child.take() else {
            return Ok(false);
        };
        let timeout = child.timeout;
        let timed_out = Arc::clone(&child.timed_out);
        let (status, stderr) = child.finish()?;
        if timed_out.load(Ordering::SeqCst) {
            return Err(VideoError::Timeout(timeout));
        }
        if !status.success() || got != 0 {
            if self.moov_after_mdat {
                return Err(VideoError::NeedsSeekableInput);
            }
            return Err(VideoError::DecodeFailed {
                status: status.to_string(),
                stderr,
            });
        }
        if self.frames_read == 0 {
            return Err(VideoError::NoFrames);
        }
        Ok(false)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Input options: the protocol and demuxer allow-lists, the demuxer itself
/// for container-less elementary streams (nothing to probe a format from),
/// and the input (stdin or the private temp file).
fn push_input_args(
    args: &mut Vec<OsString>,
    config: &FfmpegConfig,
    temp: Option<&TempInput>,
    input: &[u8],
) {
    args.push("-protocol_whitelist".into());
    args.push(if temp.is_some() { "file" } else { "pipe" }.into());
    args.push("-format_whitelist".into());
    args.push(config.format_whitelist.clone().into());
    if let Some(es) = super::elementary_stream(input) {
        args.push("-f".into());
        args.push(es.demuxer().into());
    }
    args.push("-i".into());
    match temp {
        Some(t) => {
            let mut s = OsString::from("file:");
            s.push(t.path.as_os_str());
            args.push(s);
        }
        None => args.push("pipe:0".into()),
    }
}

fn check_dims(width: u64, height: u64, limit: u64) -> Result<(), VideoError> {
    if width < 5 || height < 5 {
        return Err(VideoError::TooSmall { width, height });
    }
    if width.saturating_mul(height) > limit {
        return Err(VideoError::TooManyPixels {
            width,
            height,
            limit,
        });
    }
    Ok(())
}

/// True when `bytes` look like an MP4/MOV whose top-level `mdat` box comes
/// before its `moov` box (so demuxing needs to seek back).
pub fn mp4_moov_after_mdat(bytes: &[u8]) -> bool {
    let mut pos: usize = 0;
    let mut seen_mdat = false;
    // Top-level boxes only; a few dozen at most in real files.
    for _ in 0..1024 {
        let Some(header) = bytes.get(pos..pos.saturating_add(8)) else {
            return false;
        };
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = &header[4..8];
        let size: u64 = match size32 {
            0 => (bytes.len() - pos) as u64,
            1 => match bytes.get(pos + 8..pos + 16) {
                Some(b) => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    u64::from_be_bytes(a)
                }
                None => return false,
            },
            n => u64::from(n),
        };
        match kind {
            b"moov" => return seen_mdat,
            b"mdat" => seen_mdat = true,
            _ => {}
        }
        if size < 8 {
            return false;
        }
        let Ok(step) = usize::try_from(size) else {
            return false;
        };
        pos = match pos.checked_add(step) {
            Some(p) => p,
            None => return false,
        };
    }
    false
}

/// `ffprobe -print_format json` output → the first video stream's facts.
/// A child's output is untrusted (a hostile upload steers what it prints):
/// anything missing or out of range is an error, never a panic. Public for
/// the fuzz target `video_probe`.
pub fn parse_probe(json: &[u8]) -> Result<VideoInfo, VideoError> {
    let v: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| VideoError::Unreadable(format!("unparseable ffprobe output: {e}")))?;
    let streams = v
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or(VideoError::NoVideoStream)?;
    let stream = streams
        .iter()
        .find(|s| s.get("codec_type").and_then(|t| t.as_str()) == Some("video"))
        .ok_or(VideoError::NoVideoStream)?;
    let int = |key: &str| stream.get(key).and_then(|x| x.as_u64());
    let text = |obj: &serde_json::Value, key: &str| {
        obj.get(key).and_then(|x| x.as_str()).map(str::to_string)
    };
    let width = int("width")
        .and_then(|w| u32::try_from(w).ok())
        .unwrap_or(0);
    let height = int("height")
        .and_then(|h| u32::try_from(h).ok())
        .unwrap_or(0);
    if width == 0 || height == 0 {
        return Err(VideoError::Unreadable(
            "video stream has no dimensions".into(),
        ));
    }
    let fps = text(stream, "avg_frame_rate")
        .and_then(|r| parse_rational(&r))
        .or_else(|| text(stream, "r_frame_rate").and_then(|r| parse_rational(&r)))
        .ok_or(VideoError::NoFrameRate)?;
    let duration_secs = text(stream, "duration")
        .or_else(|| v.get("format").and_then(|f| text(f, "duration")))
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0);
    let nb_frames = text(stream, "nb_frames").and_then(|n| n.parse::<u64>().ok());
    Ok(VideoInfo {
        width,
        height,
        fps,
        duration_secs,
        nb_frames,
        format_name: v
            .get("format")
            .and_then(|f| text(f, "format_name"))
            .unwrap_or_default(),
        codec_name: text(stream, "codec_name").unwrap_or_default(),
    })
}

/// `"30000/1001"` → 29.97; `None` for zero numerator or denominator.
fn parse_rational(r: &str) -> Option<f64> {
    let (n, d) = r.split_once('/')?;
    let n: i64 = n.trim().parse().ok()?;
    let d: i64 = d.trim().parse().ok()?;
    if n <= 0 || d <= 0 {
        return None;
    }
    let fps = n as f64 / d as f64;
    fps.is_finite().then_some(fps)
}

fn resolve_program(program: &Path) -> Result<PathBuf, VideoError> {
    let missing = |detail: &str| VideoError::FfmpegMissing {
        program: program.display().to_string(),
        detail: detail.to_string(),
    };
    if program.components().count() > 1 || program.is_absolute() {
        return if program.is_file() {
            Ok(program.to_path_buf())
        } else {
            Err(missing("no such file"))
        };
    }
    let path = std::env::var_os("PATH").ok_or_else(|| missing("PATH is not set"))?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| missing("not in PATH"))
}

fn check_runs(program: &Path) -> Result<(), VideoError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let args = [OsString::from("-version")];
    let spawned = Supervised::spawn(program, &args, None, 1 << 30, deadline);
    let missing = |detail: String| VideoError::FfmpegMissing {
        program: program.display().to_string(),
        detail,
    };
    let mut child = spawned.map_err(|e| missing(e.to_string()))?;
    if let Some(out) = child.stdout.as_mut() {
        let mut sink = Vec::new();
        out.take(1 << 16)
            .read_to_end(&mut sink)
            .map_err(|e| missing(e.to_string()))?;
    }
    let (status, stderr) = child.finish().map_err(|e| missing(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(missing(format!("`-version` failed: {stderr}")))
    }
}

/// A child process under a wall-clock watchdog, with stdin fed from a
/// thread and stderr drained into a bounded tail.
struct Supervised {
    child: Arc<Mutex<Child>>,
    stdout: Option<ChildStdout>,
    writer: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    watchdog: Option<JoinHandle<()>>,
    cancel: Option<mpsc::Sender<()>>,
    timed_out: Arc<AtomicBool>,
    deadline: Instant,
    timeout: Duration,
}

impl Supervised {
    fn spawn(
        program: &Path,
        args: &[OsString],
        stdin: Option<Arc<[u8]>>,
        memory_bytes: u64,
        deadline: Instant,
    ) -> Result<Self, VideoError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        set_rlimits(&mut cmd, memory_bytes);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
                VideoError::FfmpegMissing {
                    program: program.display().to_string(),
                    detail: e.to_string(),
                }
            }
            _ => VideoError::Io(e),
        })?;
        let stdout = child.stdout.take();
        let stdin_pipe = child.stdin.take();
        let stderr_pipe = child.stderr.take();
        let writer = match (stdin, stdin_pipe) {
            (Some(bytes), Some(mut pipe)) => Some(std::thread::spawn(move || {
                // A child that stops reading early closes the pipe: the
                // resulting BrokenPipe is expected and not an error.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let stderr = stderr_pipe.map(|mut pipe| {
            std::thread::spawn(move || {
                let mut tail: Vec<u8> = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            tail.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                            if tail.len() > 2 * STDERR_TAIL {
                                let cut = tail.len() - STDERR_TAIL;
                                tail.drain(..cut);
                            }
                        }
                    }
                }
                tail
            })
        });
        let child = Arc::new(Mutex::new(child));
        let timed_out = Arc::new(AtomicBool::new(false));
        let (cancel, cancelled) = mpsc::channel::<()>();
        let watchdog = {
            let child = Arc::clone(&child);
            let timed_out = Arc::clone(&timed_out);
            std::thread::spawn(move || {
                let wait = deadline.saturating_duration_since(Instant::now());
                if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(wait) {
                    timed_out.store(true, Ordering::SeqCst);
                    let mut c = child.lock().unwrap_or_else(PoisonError::into_inner);
                    // Child::kill is a no-op on an already reaped child, so
                    // this can never signal a recycled pid.
                    let _ = c.kill();
                }
            })
        };
        let now = Instant::now();
        Ok(Supervised {
            child,
            stdout,
            writer,
            stderr,
            watchdog: Some(watchdog),
            cancel: Some(cancel),
            timed_out,
            deadline,
            timeout: deadline.saturating_duration_since(now),
        })
    }

    /// Waits for exit (the watchdog still applies) and returns the status
    /// and the stderr tail.
    fn finish(mut self) -> Result<(ExitStatus, String), VideoError> {
        self.stdout = None;
        let status = loop {
            {
                let mut c = self.child.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(status) = c.try_wait()? {
                    break status;
                }
                if Instant::now() >= self.deadline + Duration::from_secs(1) {
                    // The watchdog should have fired; make sure.
                    let _ = c.kill();
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if self.timed_out.load(Ordering::SeqCst) {
            return Err(VideoError::Timeout(self.timeout));
        }
        let text = String::from_utf8_lossy(&stderr).trim().to_string();
        Ok((status, text))
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stdout = None;
        {
            let mut c = self.child.lock().unwrap_or_else(PoisonError::into_inner);
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.cancel = None;
        for h in [self.watchdog.take(), self.writer.take()]
            .into_iter()
            .flatten()
        {
            let _ = h.join();
        }
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
    }
}

#[cfg(unix)]
fn set_rlimits(cmd: &mut Command, memory_bytes: u64) {
    use std::os::unix::process::CommandExt;
    let mem = memory_bytes as libc::rlim_t;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setrlimit, which is async-signal-safe; it touches no memory
    // shared with the parent beyond reading the copied `mem`.
    unsafe {
        cmd.pre_exec(move || {
            let limits = [
                (libc::RLIMIT_AS, mem),
                (libc::RLIMIT_FSIZE, 0),
                (libc::RLIMIT_CORE, 0),
            ];
            for (resource, value) in limits {
                let lim = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn set_rlimits(_cmd: &mut Command, _memory_bytes: u64) {}

/// A private temporary copy of an upload, deleted on drop.
struct TempInput {
    path: PathBuf,
}

impl TempInput {
    fn create(dir: &Path, bytes: &[u8]) -> Result<Self, VideoError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "echotrace-video-{}-{}-{}.bin",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let path = dir.join(name);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file: File = opts.open(&path)?;
        let temp = TempInput { path };
        file.write_all(bytes)?;
        file.sync_data()?;
        Ok(temp)
    }
}

impl Drop for TempInput {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: usize) -> Vec<u8> {
        let mut v = ((8 + payload) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.resize(8 + payload, 0);
        v
    }

    #[test]
    fn moov_layout_detection() {
        let fast = [boxed(b"ftyp", 8), boxed(b"moov", 20), boxed(b"mdat", 100)].concat();
        let slow = [boxed(b"ftyp", 8), boxed(b"mdat", 100), boxed(b"moov", 20)].concat();
        assert!(!mp4_moov_after_mdat(&fast));
        assert!(mp4_moov_after_mdat(&slow));
        assert!(!mp4_moov_after_mdat(b"not an mp4 at all"));
        assert!(!mp4_moov_after_mdat(&[0xff; 3]));
        // A box claiming to be huge must not overflow or panic.
        let mut huge = vec![0, 0, 0, 1];
        huge.extend_from_slice(b"mdat");
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(!mp4_moov_after_mdat(&huge));
    }

    #[test]
    fn rationals() {
        assert_eq!(parse_rational("30/1"), Some(30.0));
        assert!((parse_rational("30000/1001").unwrap_or(0.0) - 29.97).abs() < 0.01);
        assert_eq!(parse_rational("0/0"), None);
        assert_eq!(parse_rational("1/0"), None);
        assert_eq!(parse_rational("junk"), None);
    }

    #[test]
    fn probe_json_parsing() {
        let json = br#"{"streams":[{"codec_type":"audio"},{"codec_type":"video","codec_name":"h264","width":480,"height":720,"avg_frame_rate":"0/0","r_frame_rate":"25/1","nb_frames":"10"}],"format":{"format_name":"mov","duration":"0.4"}}"#;
        let info = parse_probe(json).expect("parses");
        assert_eq!((info.width, info.height), (480, 720));
        assert_eq!(info.fps, 25.0);
        assert_eq!(info.nb_frames, Some(10));
        assert_eq!(info.duration_secs, Some(0.4));
        let audio_only = br#"{"streams":[{"codec_type":"audio"}],"format":{}}"#;
        assert!(matches!(
            parse_probe(audio_only),
            Err(VideoError::NoVideoStream)
        ));
        assert!(matches!(parse_probe(b"{}"), Err(VideoError::NoVideoStream)));
    }
}
