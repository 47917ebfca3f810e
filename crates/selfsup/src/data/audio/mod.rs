//! Audio: WAV files decoded to mono samples (`wav.rs`), the log-mel front end (`mel.rs`), and
//! folders of clips with labels, speakers and takes (`folder.rs`).
pub mod folder;
pub mod mel;
pub mod resample;
pub mod wav;

pub use folder::{load_audio_folder, AudioFolderOptions, AudioNormalise, AudioSet};
