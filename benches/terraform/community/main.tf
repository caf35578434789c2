terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
  backend "local" {}
}

variable "endpoint" {
  type = string
}

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  endpoints {
    ec2 = var.endpoint
    s3  = var.endpoint
    sts = var.endpoint
    iam = var.endpoint
  }
}

module "vpc" {
  source = "./modules/vpc"

  name            = "bench"
  cidr            = "10.40.0.0/16"
  azs             = ["us-east-1a", "us-east-1b"]
  public_subnets  = ["10.40.1.0/24", "10.40.2.0/24"]
  private_subnets = ["10.40.11.0/24", "10.40.12.0/24"]

  tags = {
    team = "platform"
  }
}

module "web_sg" {
  source = "./modules/security-group"

  name        = "web"
  description = "web servers"
  vpc_id      = module.vpc.vpc_id

  ingress_cidr_blocks = ["10.40.0.0/16"]
  ingress_rules       = ["http-80-tcp", "https-443-tcp"]
  egress_rules        = ["all-all"]
}

module "logs" {
  source = "./modules/s3-bucket"

  bucket = "bench-logs"

  control_object_ownership              = true
  object_ownership                      = "BucketOwnerEnforced"
  attach_deny_insecure_transport_policy = true

  versioning = {
    enabled = true
  }

  server_side_encryption_configuration = {
    rule = {
      apply_server_side_encryption_by_default = {
        sse_algorithm = "AES256"
      }
    }
  }

  tags = {
    team = "platform"
  }
}
