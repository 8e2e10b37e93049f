//! Every metric bellows publishes itself: namespace, name, the dimension sets it is
//! published under, and its unit. The node's publishing (`bellows-node` `publish.rs`),
//! the proxy's mapping of its counters to ALB's names and the simulator all name their
//! metrics through these constants, so that what the simulator publishes is what the
//! node publishes by construction rather than by matching string literals.

use super::SeriesKey;

pub const EC2: &str = "AWS/EC2";
pub const AUTO_SCALING: &str = "AWS/AutoScaling";
pub const ELB: &str = "AWS/ApplicationELB";
pub const DYNAMODB: &str = "AWS/DynamoDB";
/// bellows' own additions to the load balancer's metrics (percentiles a second).
pub const BELLOWS_ELB: &str = "bellows/ApplicationELB";

/// What a metric's values count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Percent,
    Count,
    Bytes,
    Seconds,
    Milliseconds,
}

/// One metric of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub namespace: &'static str,
    pub name: &'static str,
    /// Each set of dimension names it is published under.
    pub dimensions: &'static [&'static [&'static str]],
    pub unit: Unit,
}

impl Metric {
    /// The series of this metric with these dimensions.
    pub fn key(&self, dimensions: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(self.namespace, self.name, dimensions)
    }

    /// Whether a series is of this metric (whatever its dimensions).
    pub fn is(&self, key: &SeriesKey) -> bool {
        key.namespace == self.namespace && key.name == self.name
    }
}

const BY_INSTANCE_OR_GROUP: &[&[&str]] = &[&["InstanceId"], &["AutoScalingGroupName"]];
const BY_GROUP: &[&[&str]] = &[&["AutoScalingGroupName"]];
const BY_LOAD_BALANCER: &[&[&str]] = &[&["LoadBalancer"]];
/// A load balancer counter: the listeners' total, and each target group's.
const BY_LB_AND_TARGET_GROUP: &[&[&str]] = &[
    &["LoadBalancer"],
    &["TargetGroup"],
    &["LoadBalancer", "TargetGroup"],
];
const BY_TARGET_GROUP: &[&[&str]] = &[&["TargetGroup"]];
const BY_TABLE: &[&[&str]] = &[&["TableName"]];
const BY_TABLE_AND_OPERATION: &[&[&str]] = &[&["TableName", "Operation"]];

const fn m(
    namespace: &'static str,
    name: &'static str,
    dimensions: &'static [&'static [&'static str]],
    unit: Unit,
) -> Metric {
    Metric {
        namespace,
        name,
        dimensions,
        unit,
    }
}

pub const CPU_UTILIZATION: Metric = m(EC2, "CPUUtilization", BY_INSTANCE_OR_GROUP, Unit::Percent);
pub const MEMORY_UTILIZATION: Metric = m(
    EC2,
    "MemoryUtilization",
    BY_INSTANCE_OR_GROUP,
    Unit::Percent,
);

pub const GROUP_MIN_SIZE: Metric = m(AUTO_SCALING, "GroupMinSize", BY_GROUP, Unit::Count);
pub const GROUP_MAX_SIZE: Metric = m(AUTO_SCALING, "GroupMaxSize", BY_GROUP, Unit::Count);
pub const GROUP_DESIRED_CAPACITY: Metric =
    m(AUTO_SCALING, "GroupDesiredCapacity", BY_GROUP, Unit::Count);
pub const GROUP_IN_SERVICE_INSTANCES: Metric = m(
    AUTO_SCALING,
    "GroupInServiceInstances",
    BY_GROUP,
    Unit::Count,
);
pub const GROUP_PENDING_INSTANCES: Metric =
    m(AUTO_SCALING, "GroupPendingInstances", BY_GROUP, Unit::Count);
pub const GROUP_TERMINATING_INSTANCES: Metric = m(
    AUTO_SCALING,
    "GroupTerminatingInstances",
    BY_GROUP,
    Unit::Count,
);
pub const GROUP_TOTAL_INSTANCES: Metric =
    m(AUTO_SCALING, "GroupTotalInstances", BY_GROUP, Unit::Count);

const fn counter(name: &'static str) -> Metric {
    m(ELB, name, BY_LB_AND_TARGET_GROUP, Unit::Count)
}

pub const REQUEST_COUNT: Metric = counter("RequestCount");
pub const NEW_CONNECTION_COUNT: Metric = counter("NewConnectionCount");
pub const REJECTED_CONNECTION_COUNT: Metric = counter("RejectedConnectionCount");
pub const PROCESSED_BYTES: Metric = m(ELB, "ProcessedBytes", BY_LB_AND_TARGET_GROUP, Unit::Bytes);
pub const ELB_3XX: Metric = counter("HTTPCode_ELB_3XX_Count");
pub const ELB_4XX: Metric = counter("HTTPCode_ELB_4XX_Count");
pub const ELB_5XX: Metric = counter("HTTPCode_ELB_5XX_Count");
pub const ELB_500: Metric = counter("HTTPCode_ELB_500_Count");
pub const ELB_502: Metric = counter("HTTPCode_ELB_502_Count");
pub const ELB_503: Metric = counter("HTTPCode_ELB_503_Count");
pub const ELB_504: Metric = counter("HTTPCode_ELB_504_Count");
pub const TARGET_2XX: Metric = counter("HTTPCode_Target_2XX_Count");
pub const TARGET_3XX: Metric = counter("HTTPCode_Target_3XX_Count");
pub const TARGET_4XX: Metric = counter("HTTPCode_Target_4XX_Count");
pub const TARGET_5XX: Metric = counter("HTTPCode_Target_5XX_Count");
pub const TARGET_CONNECTION_ERROR_COUNT: Metric = counter("TargetConnectionErrorCount");
pub const RETRY_COUNT: Metric = counter("RetryCount");
pub const QUEUED_REQUEST_COUNT: Metric = counter("QueuedRequestCount");
pub const QUEUE_TIMEOUT_COUNT: Metric = counter("QueueTimeoutCount");

pub const ACTIVE_CONNECTION_COUNT: Metric =
    m(ELB, "ActiveConnectionCount", BY_LOAD_BALANCER, Unit::Count);
pub const HEALTHY_HOST_COUNT: Metric = m(ELB, "HealthyHostCount", BY_TARGET_GROUP, Unit::Count);
pub const UNHEALTHY_HOST_COUNT: Metric = m(ELB, "UnHealthyHostCount", BY_TARGET_GROUP, Unit::Count);
pub const REQUEST_COUNT_PER_TARGET: Metric =
    m(ELB, "RequestCountPerTarget", BY_TARGET_GROUP, Unit::Count);
pub const TARGET_RESPONSE_TIME: Metric =
    m(ELB, "TargetResponseTime", BY_TARGET_GROUP, Unit::Seconds);
pub const TARGET_RESPONSE_TIME_P50: Metric = m(
    BELLOWS_ELB,
    "TargetResponseTimeP50",
    BY_TARGET_GROUP,
    Unit::Seconds,
);
pub const TARGET_RESPONSE_TIME_P99: Metric = m(
    BELLOWS_ELB,
    "TargetResponseTimeP99",
    BY_TARGET_GROUP,
    Unit::Seconds,
);

/// DynamoDB's, for the tables of the AWS endpoint: capacity units consumed a second,
/// and the mean latency (milliseconds, as DynamoDB publishes it) of each operation.
pub const CONSUMED_READ_CAPACITY_UNITS: Metric =
    m(DYNAMODB, "ConsumedReadCapacityUnits", BY_TABLE, Unit::Count);
pub const CONSUMED_WRITE_CAPACITY_UNITS: Metric = m(
    DYNAMODB,
    "ConsumedWriteCapacityUnits",
    BY_TABLE,
    Unit::Count,
);
pub const SUCCESSFUL_REQUEST_LATENCY: Metric = m(
    DYNAMODB,
    "SuccessfulRequestLatency",
    BY_TABLE_AND_OPERATION,
    Unit::Milliseconds,
);

/// The whole catalogue.
pub const ALL: &[Metric] = &[
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    GROUP_MIN_SIZE,
    GROUP_MAX_SIZE,
    GROUP_DESIRED_CAPACITY,
    GROUP_IN_SERVICE_INSTANCES,
    GROUP_PENDING_INSTANCES,
    GROUP_TERMINATING_INSTANCES,
    GROUP_TOTAL_INSTANCES,
    REQUEST_COUNT,
    NEW_CONNECTION_COUNT,
    REJECTED_CONNECTION_COUNT,
    PROCESSED_BYTES,
    ELB_3XX,
    ELB_4XX,
    ELB_5XX,
    ELB_500,
    ELB_502,
    ELB_503,
    ELB_504,
    TARGET_2XX,
    TARGET_3XX,
    TARGET_4XX,
    TARGET_5XX,
    TARGET_CONNECTION_ERROR_COUNT,
    RETRY_COUNT,
    QUEUED_REQUEST_COUNT,
    QUEUE_TIMEOUT_COUNT,
    ACTIVE_CONNECTION_COUNT,
    HEALTHY_HOST_COUNT,
    UNHEALTHY_HOST_COUNT,
    REQUEST_COUNT_PER_TARGET,
    TARGET_RESPONSE_TIME,
    TARGET_RESPONSE_TIME_P50,
    TARGET_RESPONSE_TIME_P99,
    CONSUMED_READ_CAPACITY_UNITS,
    CONSUMED_WRITE_CAPACITY_UNITS,
    SUCCESSFUL_REQUEST_LATENCY,
];

/// The catalogue's metric of a series, if its dimensions are one of the metric's sets.
pub fn lookup(key: &SeriesKey) -> Option<&'static Metric> {
    ALL.iter().find(|m| {
        m.is(key)
            && m.dimensions.iter().any(|set| {
                set.len() == key.dimensions.len()
                    && set.iter().all(|d| key.dimensions.contains_key(*d))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_metric_is_in_the_catalogue_once() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(
                ALL[i + 1..]
                    .iter()
                    .all(|b| (a.namespace, a.name) != (b.namespace, b.name)),
                "{} {} twice",
                a.namespace,
                a.name
            );
            assert!(!a.dimensions.is_empty(), "{} has no dimensions", a.name);
        }
    }

    #[test]
    fn a_series_is_found_only_with_dimensions_the_metric_has() {
        let by_group = CPU_UTILIZATION.key(&[("AutoScalingGroupName", "web")]);
        assert_eq!(lookup(&by_group), Some(&CPU_UTILIZATION));
        let by_both = REQUEST_COUNT.key(&[("LoadBalancer", "lb"), ("TargetGroup", "tg")]);
        assert_eq!(lookup(&by_both), Some(&REQUEST_COUNT));
        assert_eq!(lookup(&CPU_UTILIZATION.key(&[("TargetGroup", "tg")])), None);
        assert_eq!(lookup(&SeriesKey::new("App", "ActiveUsers", &[])), None);
    }
}
