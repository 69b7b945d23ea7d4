//! Configuration: the TOML schema, layered loading with file/key/hint errors,
//! semantic validation, and compilation into the runtime [`Plant`].

mod load;
pub mod modbus;

mod plant;
pub mod schema;
mod validate;

pub use load::{
    check_models, load, load_checked, load_files, ConfigErrors, EmbeddedResolver, FsResolver, Issue, Resolver,
    SourceText, ENV_PREFIX,
};
pub use plant::{
    default_column, AssetInfo, BaselineRule, ChannelInfo, FailureModeInfo, Interval, LifeRule, LimitRule, NoveltyRule,
    Plant, PreventiveRule, TrendRule, UsageRule, VibrationRule, STALE_DATA,
};
pub use schema::Config;
