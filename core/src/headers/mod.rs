//! HTTP header names as the plugin meets them: the list the host gives in
//! one call ([`names`]), the spelling Go's header map keys them by
//! ([`canonical`]), and the headers an operator chose to tag spans with
//! ([`tags`]).

pub mod canonical;
pub mod names;
pub mod tags;
