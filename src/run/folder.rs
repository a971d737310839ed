//! A run folder: its files, written so that a kill at any moment leaves a run that resumes, and
//! a lock that keeps it to one `wgml train` at a time.
//!
//! After each epoch the derived files are written first (`metrics.csv`, `chart.png`,
//! `model.safetensors`, the `--save` copy) and `checkpoint.safetensors` last: the checkpoint is
//! the epoch's commit point. Resuming takes the checkpoint's epoch as the truth and drops any
//! metrics row beyond it; a folder with a config but no checkpoint (killed in its first epoch)
//! starts afresh from its config.

use super::RunConfig;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use wgml::checkpoint::{self, write_atomically, TrainingState};
use wgml::nn::{ModelSpec, NamedTensor};
use wgml::{plot, Error, Result};

const CONFIG: &str = "config.json";
const METRICS: &str = "metrics.csv";
const MODEL: &str = "model.safetensors";
const CHECKPOINT: &str = "checkpoint.safetensors";
const LOCK: &str = ".wgml.lock";

/// A run folder held by this process (an exclusive lock on its lock file, released when the
/// folder is dropped or the process ends, however it ends).
pub struct RunFolder {
    dir: PathBuf,
    _lock: File,
}

impl RunFolder {
    /// Creates and locks the folder of a new run: `dir`, or `runs/<UTC date-time>`. An error if
    /// another process holds it or it already holds a run.
    pub fn create(dir: Option<&Path>) -> Result<Self> {
        let dir = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::data(dir, format!("cannot create the run folder: {e}")))?;
                dir.to_path_buf()
            }
            None => create_default_run_dir()?,
        };
        let folder = Self::lock(dir)?;
        if folder.file(CONFIG).exists() {
            return Err(Error::data(
                &folder.dir,
                "already holds a run: continue it with --resume, or choose another --out",
            ));
        }
        Ok(folder)
    }

    /// Locks the folder of an existing run to continue it.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join(CONFIG).is_file() {
            return Err(Error::data(
                dir,
                "not a run folder (no config.json): start a run with --out instead",
            ));
        }
        Self::lock(dir.to_path_buf())
    }

    fn lock(dir: PathBuf) -> Result<Self> {
        let path = dir.join(LOCK);
        let io = |e: std::io::Error| Error::data(&path, format!("cannot lock the run folder: {e}"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::data(
                    &dir,
                    format!(
                        "is in use by another wgml train (PID {}); wait for it, or choose another \
                         folder",
                        holder.trim()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(RunFolder { dir, _lock: file })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A file of the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The run's configuration.
    pub fn read_config(&self) -> Result<RunConfig> {
        let path = self.file(CONFIG);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::data(&path, format!("cannot read: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::data(&path, format!("not a run config: {e}")))
    }

    /// Writes the run's configuration (once, before the first epoch).
    pub fn write_config(&self, config: &RunConfig) -> Result<()> {
        let json =
            serde_json::to_string_pretty(config).map_err(|e| Error::invalid(e.to_string()))?;
        write_atomically(&self.file(CONFIG), json.as_bytes())
    }

    /// Where the run stands: the last committed epoch's state and its metrics rows, or nothing
    /// when no epoch was committed.
    pub fn progress(&self) -> Result<(Option<TrainingState>, Vec<Row>)> {
        let checkpoint = self.file(CHECKPOINT);
        if !checkpoint.exists() {
            return Ok((None, Vec::new()));
        }
        let state = checkpoint::load_training(&checkpoint)?;
        let mut rows = read_csv(&self.file(METRICS))?;
        if rows.len() < state.epoch {
            return Err(Error::data(
                self.file(METRICS),
                format!(
                    "has {} epochs but the checkpoint {}: the folder was changed by hand",
                    rows.len(),
                    state.epoch
                ),
            ));
        }
        // Rows of an epoch whose checkpoint was not written are not part of the run.
        rows.truncate(state.epoch);
        Ok((Some(state), rows))
    }

    /// Commits an epoch: metrics, chart, weights (and the `--save` copy), then the checkpoint.
    pub fn commit_epoch(
        &self,
        rows: &[Row],
        (weights, spec): (&[NamedTensor], &ModelSpec),
        save: Option<&Path>,
        state: &TrainingState,
    ) -> Result<()> {
        write_csv(&self.file(METRICS), rows)?;
        let column = |f: fn(&Row) -> f64| rows.iter().map(f).collect::<Vec<_>>();
        let chart = plot::chart(
            &column(|r| r.train_loss),
            &column(|r| r.test_loss),
            &column(|r| r.test_accuracy),
        )?;
        plot::save_png(&self.file("chart.png"), &chart)?;
        checkpoint::save_model(&self.file(MODEL), weights, spec)?;
        if let Some(path) = save {
            checkpoint::save_model(path, weights, spec)?;
        }
        checkpoint::save_training(&self.file(CHECKPOINT), state)
    }
}

/// One line of `metrics.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub epoch: usize,
    pub train_loss: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
    /// Seconds spent compiling kernels before this epoch (in the process that trained it).
    pub compile_seconds: f64,
}

const CSV_HEADER: &str = "epoch,train_loss,test_loss,test_accuracy,seconds,compile_seconds";

fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut text = format!("{CSV_HEADER}\n");
    for r in rows {
        text += &format!(
            "{},{},{},{},{:.3},{:.3}\n",
            r.epoch, r.train_loss, r.test_loss, r.test_accuracy, r.seconds, r.compile_seconds
        );
    }
    write_atomically(path, text.as_bytes())
}

fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::data(path, format!("cannot read: {e}")))?;
    let bad = |line: &str| Error::data(path, format!("not a metrics line: {line:?}"));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<f64> = line
                .split(',')
                .map(|v| v.parse::<f64>().map_err(|_| bad(line)))
                .collect::<Result<_>>()?;
            // Runs from before compile times were kept have five columns.
            let (fields, compile_seconds) = match f[..] {
                [ref first @ .., compile] if f.len() == 6 => (first, compile),
                _ => (&f[..], 0.0),
            };
            match fields[..] {
                [epoch, train_loss, test_loss, test_accuracy, seconds] => Ok(Row {
                    epoch: epoch as usize,
                    train_loss,
                    test_loss,
                    test_accuracy,
                    seconds,
                    compile_seconds,
                }),
                _ => Err(bad(line)),
            }
        })
        .collect()
}

/// Creates `runs/<UTC date-time>` (with `-2`, `-3`, … when that is taken) and returns it. Each
/// name is claimed by creating it, so runs started in the same second get folders of their own.
fn create_default_run_dir() -> Result<PathBuf> {
    let base = timestamp_dir();
    if let Some(parent) = base.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::data(parent, format!("cannot create: {e}")))?;
    }
    for n in 1.. {
        let dir = if n == 1 {
            base.clone()
        } else {
            PathBuf::from(format!("{}-{n}", base.display()))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::data(
                    &dir,
                    format!("cannot create the run folder: {e}"),
                ))
            }
        }
    }
    unreachable!("an unbounded range always yields a free name")
}

/// `runs/<YYYYMMDD-HHMMSS>` in UTC (civil date from days since 1970).
fn timestamp_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    PathBuf::from("runs").join(format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}
