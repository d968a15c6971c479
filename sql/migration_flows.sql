-- Analysts: per score date, how many users the model expects to move from their
-- current top category (most events among their last L) to a different predicted top
-- category, with the flow's share of that current category's users.
-- list_extract(list, 1) is the first element in DuckDB and DataFusion, and in Spark SQL through the function
-- `python -m jobs catalog` registers (Spark's own list[1] would be the second element).
-- Run: python -m jobs sql --file sql/migration_flows.sql
-- columns: score_date, current_top_category, predicted_top_category, users, share_of_current, avg_predicted_probability, avg_migration_probability
WITH tops AS (
    SELECT score_date,
           current_top_category,
           list_extract(top_categories, 1)['category'] AS predicted_top_category,
           list_extract(top_categories, 1)['probability'] AS predicted_probability,
           migration_probability
    FROM user_interest_predictions
),
flows AS (
    SELECT score_date, current_top_category, predicted_top_category,
           count(*) AS users,
           avg(predicted_probability) AS avg_predicted_probability,
           avg(migration_probability) AS avg_migration_probability
    FROM tops
    GROUP BY score_date, current_top_category, predicted_top_category
),
shares AS (
    SELECT *, CAST(users AS DOUBLE) / sum(users) OVER (PARTITION BY score_date, current_top_category) AS share_of_current
    FROM flows
)
SELECT score_date,
       current_top_category,
       predicted_top_category,
       users,
       round(share_of_current, 3) AS share_of_current,
       round(avg_predicted_probability, 4) AS avg_predicted_probability,
       round(avg_migration_probability, 4) AS avg_migration_probability
FROM shares
WHERE predicted_top_category IS DISTINCT FROM current_top_category
-- NULLS LAST spelled out: DuckDB's default for ascending order, Spark's is NULLS FIRST.
ORDER BY score_date, users DESC, current_top_category NULLS LAST, predicted_top_category NULLS LAST
