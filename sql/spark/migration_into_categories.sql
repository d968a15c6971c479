-- Spark SQL, for cluster users: per category, how many users are predicted to move into it
-- (their predicted top category differs from their current top category) in the latest
-- scoring, next to the category's expected new users from the demand forecast.
--
-- Here: python -m jobs sql --engine spark --file sql/spark/migration_into_categories.sql
--   (every lake table is a temporary view of the same name).
-- On a cluster with the Delta Spark connector, name the tables by path instead, e.g.
--   FROM delta.`s3://bucket/lake/user_interest_predictions`
-- or register them once:
--   CREATE TABLE user_interest_predictions USING DELTA LOCATION 's3://bucket/lake/user_interest_predictions';
-- columns: score_date, category, users_moving_in, avg_propensity, expected_new_users, model_version
WITH latest AS (
    SELECT max(score_date) AS score_date FROM user_interest_predictions
),
moves AS (
    SELECT p.score_date,
           element_at(p.top_categories, 1).category AS category,
           element_at(p.top_categories, 1).probability AS propensity,
           p.model_version
    FROM user_interest_predictions AS p
    JOIN latest ON p.score_date = latest.score_date
    WHERE element_at(p.top_categories, 1).category <> coalesce(p.current_top_category, '')
)
SELECT m.score_date,
       m.category,
       count(*) AS users_moving_in,
       round(avg(m.propensity), 4) AS avg_propensity,
       round(first(f.expected_new_users), 1) AS expected_new_users,
       first(m.model_version) AS model_version
FROM moves AS m
LEFT JOIN category_demand_forecast AS f
  ON f.score_date = m.score_date AND f.category = m.category
GROUP BY m.score_date, m.category
ORDER BY users_moving_in DESC, m.category
