//! Every operator of a query gives its thread back now and then. DataFusion makes only scans and
//! exchanges cooperative: an operator above them that computes much per input batch (a nested
//! loop join of three catalogues, say) returns batch after batch without ever yielding, so its
//! task holds a runtime thread for minutes — a timeout set on it never fires, dropping its answer
//! does not stop it, and other queries wait for a thread. The rule here, run after DataFusion's
//! own, wraps every operator that is not already cooperative in DataFusion's `CooperativeExec`:
//! each batch it passes costs one unit of Tokio's task budget, and a task that has spent its
//! budget yields — where a timeout fires and a dropped query is cancelled.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::SchedulingType;

/// Wraps every non-cooperative operator in a `CooperativeExec`.
#[derive(Debug, Default)]
pub(super) struct YieldEverywhere;

impl PhysicalOptimizerRule for YieldEverywhere {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.properties().scheduling_type == SchedulingType::Cooperative {
                Ok(Transformed::no(node))
            } else {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldEverywhere"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
