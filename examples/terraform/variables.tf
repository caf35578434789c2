variable "aws_endpoint" {
  description = "The AWS API endpoint (moto's server in tests)."
  type        = string
}

variable "region" {
  description = "The AWS region."
  type        = string
  default     = "us-east-1"
}

variable "db_password" {
  description = "The database's master password."
  type        = string
  sensitive   = true
}
