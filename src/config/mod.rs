//! Configuration: the TOML schema (the `[backend]` table, one settings type
//! per kind, in `backend`), layered loading with file/key/hint errors and
//! semantic validation. It imports nothing of the pipeline; the pipeline
//! compiles a loaded configuration into its `Plant`.

pub mod backend;
pub mod inputs;
mod load;
pub mod modbus;
pub mod operate;
pub mod plausible;
pub mod schema;
pub mod topic;
mod validate;
pub mod zones;

pub use load::{
    load, load_files, load_files_traced, ConfigErrors, EmbeddedResolver, FsResolver, Issue,
    Resolver, SourceText, ENV_PREFIX,
};
pub use schema::Config;
