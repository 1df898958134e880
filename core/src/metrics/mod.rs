//! A request's DogStatsD metrics ([`dogstatsd`]) and the bounds on the tag
//! values clients choose ([`cardinality`]).

pub mod cardinality;
pub mod dogstatsd;
