"""A regional WAF web ACL: AWS managed rule groups plus a per-address rate limit."""

from __future__ import annotations

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

# Per source address per 5 minutes; phones behind a carrier NAT share one address.
_RATE_LIMIT = 3000


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


def _managed(priority: int, name: str, *, counted: tuple[str, ...] = ()) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in counted
                ],
            )
        ),
        visibility_config=_visibility(name),
    )


def regional_web_acl(scope: Construct, construct_id: str, metric_prefix: str) -> wafv2.CfnWebACL:
    rate_limit = wafv2.CfnWebACL.RuleProperty(
        name="RatePerAddress",
        priority=0,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=_RATE_LIMIT, aggregate_key_type="IP"
            )
        ),
        visibility_config=_visibility(f"{metric_prefix}RatePerAddress"),
    )
    return wafv2.CfnWebACL(
        scope,
        construct_id,
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility(metric_prefix),
        rules=[
            rate_limit,
            _managed(1, "AWSManagedRulesAmazonIpReputationList"),
            # Device reports are binary weight files far above the 8 KB body rule.
            _managed(2, "AWSManagedRulesCommonRuleSet", counted=("SizeRestrictions_BODY",)),
            _managed(3, "AWSManagedRulesKnownBadInputsRuleSet"),
        ],
    )
